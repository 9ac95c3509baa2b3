package sources

import (
	"context"
	"io"
	"math"

	"github.com/weirstream/weir"
)

// WordsConfig configures the Words generator.
type WordsConfig struct {
	// Lines is the number of lines; 0 means 100000.
	Lines int64
	// WordsPerLine is the number of words on every line; 0 means 8.
	WordsPerLine int
	// Seed selects the text; the same config always yields the same lines.
	Seed int64
}

// Defaults of WordsConfig.
const (
	DefaultWordsLines        = 100000
	DefaultWordsWordsPerLine = 8
)

// Words returns a deterministic bounded source of text for word-count demos:
// lines of WordsPerLine words separated by single spaces, drawn from a fixed
// vocabulary of 1000 English words with a Zipf distribution (the word of rank
// r, from 1, has probability proportional to 1/r). The first word of a line
// is capitalized and a few others are capitalized or upper-case, so a word
// count should fold case.
//
// Line n depends only on Seed and n, and subtask i of p emits the lines with
// n % p == i in increasing order: the same config yields the same lines
// whatever the parallelism. Negative Lines or WordsPerLine fail Open with an
// error that wraps ErrConfig.
func Words(cfg WordsConfig) weir.Source[string] {
	return &wordsSource{cfg: cfg}
}

func (c WordsConfig) withDefaults() WordsConfig {
	if c.Lines == 0 {
		c.Lines = DefaultWordsLines
	}
	if c.WordsPerLine == 0 {
		c.WordsPerLine = DefaultWordsWordsPerLine
	}
	return c
}

func (c WordsConfig) validate() error {
	if c.Lines < 0 {
		return configErrorf("WordsConfig.Lines must be >= 0, got %d", c.Lines)
	}
	if c.WordsPerLine < 0 {
		return configErrorf("WordsConfig.WordsPerLine must be >= 0, got %d", c.WordsPerLine)
	}
	return nil
}

type wordsSource struct {
	cfg WordsConfig
}

func (s *wordsSource) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[string], error) {
	return s.open(info)
}

func (s *wordsSource) open(info weir.SubtaskInfo) (*wordsReader, error) {
	return s.openLanes(info, []lane{{first: int64(info.Index), step: int64(info.Parallelism)}})
}

// openLanes opens a reader of the lines of lanes (see lanes.go; done counts
// lines, one round).
func (s *wordsSource) openLanes(info weir.SubtaskInfo, lanes []lane) (*wordsReader, error) {
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkInfo("words", info); err != nil {
		return nil, err
	}
	cfg := s.cfg.withDefaults()
	r := &wordsReader{info: info, lines: cfg.Lines, words: cfg.WordsPerLine, seed: uint64(cfg.Seed)}
	for _, l := range lanes {
		size := l.size(r.lines)
		if l.done < 0 || l.done > size {
			return nil, positionErrorf(posWords, "%d lines returned, but subtask %d of %d has only %d", l.done, info.Index, info.Parallelism, size)
		}
		r.lanes = append(r.lanes, l)
	}
	return r, nil
}

// Restore opens subtask info.Index at a position returned by its reader's
// Position; an empty position means the start. The position holds the number
// of lines returned, Seed and WordsPerLine, which must not change; Lines may.
func (s *wordsSource) Restore(_ context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[string], error) {
	if len(position) == 0 {
		return s.open(info)
	}
	fp, lanes, err := decodeLanes(posWords, info, position, 2)
	if err != nil {
		return nil, err
	}
	if err := s.checkFingerprint(fp); err != nil {
		return nil, err
	}
	return s.openLanes(info, lanes)
}

// RestoreRescaled implements weir.RescalableSource: subtask i of the new
// parallelism q reads the lines n with n mod q == i that no old subtask
// returned.
func (s *wordsSource) RestoreRescaled(_ context.Context, info weir.SubtaskInfo, positions [][]byte) (weir.SourceReader[string], error) {
	fp, old, err := oldLanes(posWords, info, positions, 2)
	if err != nil {
		return nil, err
	}
	if fp != nil {
		if err := s.checkFingerprint(fp); err != nil {
			return nil, err
		}
	}
	return s.openLanes(info, rescaleLanes(old, s.cfg.withDefaults().Lines, info))
}

func (s *wordsSource) checkFingerprint(fp []uint64) error {
	cfg := s.cfg.withDefaults()
	if seed, words := fp[0], fp[1]; seed != uint64(cfg.Seed) || words != uint64(cfg.WordsPerLine) {
		return positionErrorf(posWords, "position of words with Seed %d and WordsPerLine %d, source has %d and %d",
			int64(seed), words, cfg.Seed, cfg.WordsPerLine)
	}
	return nil
}

var (
	_ weir.RescalableSource[string] = (*wordsSource)(nil)
	_ weir.CheckpointedReader       = (*wordsReader)(nil)
)

type wordsReader struct {
	info  weir.SubtaskInfo
	lanes []lane // lines first+done*step, ... < lines are still to read
	lines int64
	words int
	seed  uint64
	line  []byte
}

// Position returns the number of lines returned so far (see Restore), or
// after a rescale, those of each lane.
func (r *wordsReader) Position() ([]byte, error) {
	fp := []uint64{r.seed, uint64(r.words)}
	if l := r.lanes; len(l) == 1 && l[0].first == int64(r.info.Index) && l[0].step == int64(r.info.Parallelism) {
		return encodePosition(posWords, r.info.Index, r.info.Parallelism, append(fp, uint64(l[0].done))...), nil
	}
	return encodeLanes(posWords, r.info, fp, r.lanes), nil
}

func (r *wordsReader) Read(ctx context.Context, buf []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	for n := space(buf); n > 0; n-- {
		// The lane with the lowest next line first.
		var l *lane
		for i := range r.lanes {
			c := &r.lanes[i]
			if c.done < c.size(r.lines) && (l == nil || c.first+c.done*c.step < l.first+l.done*l.step) {
				l = c
			}
		}
		if l == nil {
			return buf, io.EOF
		}
		r.line = appendWordsLine(r.line[:0], r.seed, l.first+l.done*l.step, r.words)
		buf = append(buf, string(r.line))
		l.done++
	}
	for _, l := range r.lanes {
		if l.done < l.size(r.lines) {
			return buf, nil
		}
	}
	return buf, io.EOF
}

func (r *wordsReader) Close() error { return nil }

// appendWordsLine appends line n of the text selected by seed.
func appendWordsLine(b []byte, seed uint64, n int64, words int) []byte {
	rng := splitmix64(seed ^ splitmix64(uint64(n)))
	for i := 0; i < words; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		rng = splitmix64(rng)
		w := vocabulary[zipfRank(rng)]
		rng = splitmix64(rng)
		switch c := rng % 64; {
		case c == 0: // about 1 word in 64 is shouted
			for j := 0; j < len(w); j++ {
				b = append(b, w[j]-'a'+'A')
			}
		case i == 0 || c < 4: // sentence start, or about 1 in 21 elsewhere
			b = append(b, w[0]-'a'+'A')
			b = append(b, w[1:]...)
		default:
			b = append(b, w...)
		}
	}
	return b
}

// splitmix64 is one step of the SplitMix64 generator: a bijective mix of x
// plus the golden-ratio increment.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// zipfCDF[r] is the probability that the rank is <= r, scaled to 2^64.
var zipfCDF = func() []uint64 {
	var total float64
	for r := range vocabulary {
		total += 1 / float64(r+1)
	}
	cdf := make([]uint64, len(vocabulary))
	var sum float64
	for r := range vocabulary {
		sum += 1 / float64(r+1)
		if f := sum / total * (1 << 64); f < 1<<64 {
			cdf[r] = uint64(f)
		} else {
			cdf[r] = math.MaxUint64
		}
	}
	cdf[len(cdf)-1] = math.MaxUint64
	return cdf
}()

// zipfRank maps a uniform 64-bit number to a vocabulary rank.
func zipfRank(u uint64) int {
	lo, hi := 0, len(zipfCDF)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if u < zipfCDF[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}
