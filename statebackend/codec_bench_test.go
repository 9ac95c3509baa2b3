package statebackend

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"testing"
	"time"
)

// Codec comparison for state values (each value encoded on its own, as state
// stores it; gob therefore pays for its type description every time).
//
//	go test -run '^$' -bench Codec -benchmem ./statebackend/
//
// msgpack was left out to keep a benchmark-only module out of go.mod.

// Bid is a Nexmark bid, a typical flat event.
type Bid struct {
	Auction  int64
	Bidder   int64
	Price    int64
	Channel  string
	URL      string
	DateTime time.Time
	Extra    string
}

// Session is a typical nested aggregate: slices, a map and a pointer.
type Session struct {
	User    string
	Start   time.Time
	Events  []Bid
	Counts  map[string]int64
	Last    *Bid
	Flagged bool
}

func benchBid() Bid {
	return Bid{
		Auction: 1001, Bidder: 2_000_017, Price: 12_345, Channel: "channel-7",
		URL:      "https://www.nexmark.com/abc/item.htm?query=1",
		DateTime: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Extra: "",
	}
}

func benchSession() Session {
	b := benchBid()
	return Session{
		User: "user-42", Start: b.DateTime,
		Events: []Bid{b, b, b, b},
		Counts: map[string]int64{"clicks": 12, "bids": 4, "views": 99},
		Last:   &b,
	}
}

type codecUnderTest[T any] struct {
	name string
	enc  func(dst []byte, v T) []byte
	dec  func(src []byte) (T, error)
}

func codecsUnderTest[T any]() []codecUnderTest[T] {
	bin := MustCodecFor[T]()
	return []codecUnderTest[T]{
		{"weir-binary", bin.Append, bin.Decode},
		{"encoding-json", func(dst []byte, v T) []byte {
			out, err := json.Marshal(v)
			if err != nil {
				panic(err)
			}
			return append(dst, out...)
		}, func(src []byte) (T, error) {
			var v T
			err := json.Unmarshal(src, &v)
			return v, err
		}},
		{"encoding-gob", func(dst []byte, v T) []byte {
			buf := bytes.NewBuffer(dst)
			if err := gob.NewEncoder(buf).Encode(v); err != nil {
				panic(err)
			}
			return buf.Bytes()
		}, func(src []byte) (T, error) {
			var v T
			err := gob.NewDecoder(bytes.NewReader(src)).Decode(&v)
			return v, err
		}},
	}
}

func benchCodecs[T any](b *testing.B, v T) {
	for _, c := range codecsUnderTest[T]() {
		enc := c.enc(nil, v)
		b.Run(c.name+"/encode", func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = c.enc(buf[:0], v)
			}
			b.ReportMetric(float64(len(enc)), "encoded-bytes")
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.dec(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCodecBid(b *testing.B)     { benchCodecs(b, benchBid()) }
func BenchmarkCodecSession(b *testing.B) { benchCodecs(b, benchSession()) }

// The built-in codecs on the hot path of keyed counts.
func BenchmarkCodecInt64(b *testing.B) {
	c := MustCodecFor[int64]()
	buf := make([]byte, 0, 8)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = c.Append(buf[:0], int64(i))
		if _, err := c.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// Every codec in the comparison decodes what it encoded.
func TestCodecsUnderTestRoundTrip(t *testing.T) {
	bid, session := benchBid(), benchSession()
	for _, c := range codecsUnderTest[Bid]() {
		got, err := c.dec(c.enc(nil, bid))
		if err != nil || got != bid {
			t.Errorf("%s: Bid round trip: %+v, %v", c.name, got, err)
		}
	}
	for _, c := range codecsUnderTest[Session]() {
		got, err := c.dec(c.enc(nil, session))
		if err != nil || got.User != session.User || len(got.Events) != 4 || got.Counts["views"] != 99 || *got.Last != bid {
			t.Errorf("%s: Session round trip: %+v, %v", c.name, got, err)
		}
	}
}
