package nexmark

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
)

// Generator computes the events of a Config: Event(c, &e) fills e with
// event number c, 0 <= c < Config.Events, of the one global sequence. It is
// a port of nexmark-flink's generator (NexmarkGenerator and the model
// generators); see doc.go for where it departs from it. The content of an
// event depends only on the Config and c, so any subtask can compute any
// event, in any order, and a restore needs only a count.
type Generator struct {
	cfg     Config
	total   int64   // sum of the proportions
	delayUs float64 // event-time spacing in microseconds
	baseMs  int64
}

// NewGenerator returns the generator of cfg, which must be valid.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Generator{
		cfg:     cfg,
		total:   cfg.totalProportion(),
		delayUs: 1e6 / cfg.Rate,
		baseMs:  cfg.BaseTime.UnixMilli(),
	}, nil
}

// Config returns the generator's configuration.
func (g *Generator) Config() Config { return g.cfg }

// The reference numbers events from firstEventNumber = 1 and gives them ids
// from firstEventId = 1 (NexmarkTableSourceFactory): event c has number
// 1+c and id 1+adjusted(1+c).
const (
	firstEventNumber = 1
	firstEventID     = 1
	firstPersonID    = 1000
	firstAuctionID   = 1000
	firstCategoryID  = 10
	numCategories    = 5
	personIDLead     = 10
	auctionIDLead    = 10
	hotSellerRatio   = 100
	hotAuctionRatio  = 100
	hotBidderRatio   = 100
	hotChannelsRatio = 2
	channelsNumber   = 10_000
	minStringLength  = 3
)

// adjusted is GeneratorConfig.nextAdjustedEventNumber: event numbers
// shuffled within groups of OutOfOrderGroupSize.
func (g *Generator) adjusted(c int64) int64 {
	n := g.cfg.OutOfOrderGroupSize
	num := firstEventNumber + c
	return num/n*n + (num*953)%n
}

// timestamp is GeneratorConfig.timestampForEvent.
func (g *Generator) timestamp(eventNumber int64) int64 {
	return g.baseMs + int64(float64(eventNumber)*g.delayUs)/1000
}

// EventTime returns the event time of event c.
func (g *Generator) EventTime(c int64) Time { return Time(g.timestamp(g.adjusted(c))) }

// Watermark returns a watermark that holds after event c: no event at or
// after c has an earlier time (GeneratorConfig.nextEventNumberForWatermark).
func (g *Generator) Watermark(c int64) Time {
	n := g.cfg.OutOfOrderGroupSize
	return Time(g.timestamp((firstEventNumber + c) / n * n))
}

// Event fills e with event c.
func (g *Generator) Event(c int64, e *Event) {
	ts := g.timestamp(g.adjusted(c))
	id := firstEventID + g.adjusted(c)
	r := newRand(g.cfg.Seed, uint64(id))
	rem := id % g.total
	switch {
	case rem < int64(g.cfg.PersonProportion):
		*e = Event{Kind: KindPerson, Person: g.person(id, &r, ts)}
	case rem < int64(g.cfg.PersonProportion+g.cfg.AuctionProportion):
		*e = Event{Kind: KindAuction, Auction: g.auction(c, id, &r, ts)}
	default:
		e.Kind, e.Person, e.Auction = KindBid, nil, nil
		g.bid(id, &r, ts, &e.Bid)
	}
}

// PersonGenerator.nextPerson.
func (g *Generator) person(id int64, r *rng, ts int64) *Person {
	p := &Person{ID: g.lastBase0PersonID(id) + firstPersonID, DateTime: Time(ts)}
	p.Name = firstNames[r.intn(len(firstNames))] + " " + lastNames[r.intn(len(lastNames))]
	p.EmailAddress = nextString(r, 7, ' ') + "@" + nextString(r, 5, ' ') + ".com"
	tables := statics()
	var cc strings.Builder
	cc.Grow(19)
	for i := range 4 {
		if i > 0 {
			cc.WriteByte(' ')
		}
		cc.WriteString(tables.creditCards[r.intn(len(tables.creditCards))])
	}
	p.CreditCard = cc.String()
	p.City = usCities[r.intn(len(usCities))]
	p.State = usStates[r.intn(len(usStates))]
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = nextExtra(r, size, g.cfg.AvgPersonByteSize)
	return p
}

// AuctionGenerator.nextAuction; c is the reference's eventsCountSoFar.
func (g *Generator) auction(c, id int64, r *rng, ts int64) *Auction {
	a := &Auction{ID: g.lastBase0AuctionID(id) + firstAuctionID, DateTime: Time(ts)}
	if r.intn(g.cfg.HotSellersRatio) > 0 {
		a.Seller = g.lastBase0PersonID(id) / hotSellerRatio * hotSellerRatio
	} else {
		a.Seller = g.nextBase0PersonID(id, r)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + int64(r.intn(numCategories))
	a.InitialBid = nextPrice(r)
	a.Expires = Time(ts + g.nextAuctionLengthMs(c, r, ts))
	a.ItemName = nextString(r, 20, ' ')
	a.Description = nextString(r, 100, ' ')
	a.Reserve = a.InitialBid + nextPrice(r)
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = nextExtra(r, size, g.cfg.AvgAuctionByteSize)
	return a
}

// BidGenerator.nextBid.
func (g *Generator) bid(id int64, r *rng, ts int64, b *Bid) {
	*b = Bid{DateTime: Time(ts)}
	if r.intn(g.cfg.HotAuctionRatio) > 0 {
		b.Auction = g.lastBase0AuctionID(id) / hotAuctionRatio * hotAuctionRatio
	} else {
		b.Auction = g.nextBase0AuctionID(id, r)
	}
	b.Auction += firstAuctionID
	if r.intn(g.cfg.HotBiddersRatio) > 0 {
		b.Bidder = g.lastBase0PersonID(id)/hotBidderRatio*hotBidderRatio + 1
	} else {
		b.Bidder = g.nextBase0PersonID(id, r)
	}
	b.Bidder += firstPersonID
	b.Price = nextPrice(r)
	tables := statics()
	if r.intn(hotChannelsRatio) > 0 {
		i := r.intn(len(hotChannels))
		b.Channel, b.URL = hotChannels[i], tables.hotURLs[i]
	} else {
		ch := &tables.channels[r.intn(channelsNumber)]
		b.Channel, b.URL = ch.name, ch.url
	}
	// The reference adds FIRST_PERSON_ID to the bidder a second time here
	// (BidGenerator.nextBid); kept, so that bidder ids have its
	// distribution.
	b.Bidder += firstPersonID
	b.Extra = nextExtra(r, 8+8+8+8, g.cfg.AvgBidByteSize)
}

// lastBase0PersonID is PersonGenerator.lastBase0PersonId: the id (from 0)
// of the last person created by event id.
func (g *Generator) lastBase0PersonID(id int64) int64 {
	epoch, offset := id/g.total, id%g.total
	if pp := int64(g.cfg.PersonProportion); offset >= pp {
		offset = pp - 1
	}
	return epoch*int64(g.cfg.PersonProportion) + offset
}

// nextBase0PersonID is PersonGenerator.nextBase0PersonId: a random active
// person, or one of the next few to be created.
func (g *Generator) nextBase0PersonID(id int64, r *rng) int64 {
	people := g.lastBase0PersonID(id) + 1
	active := min(people, int64(g.cfg.NumActivePeople))
	return people - active + r.longn(active+personIDLead)
}

// lastBase0AuctionID is AuctionGenerator.lastBase0AuctionId.
func (g *Generator) lastBase0AuctionID(id int64) int64 {
	epoch, offset := id/g.total, id%g.total
	pp, ap := int64(g.cfg.PersonProportion), int64(g.cfg.AuctionProportion)
	switch {
	case offset < pp:
		epoch--
		offset = ap - 1
	case offset >= pp+ap:
		offset = ap - 1
	default:
		offset -= pp
	}
	return epoch*ap + offset
}

// nextBase0AuctionID is AuctionGenerator.nextBase0AuctionId: a random
// in-flight auction, or one of the next few.
func (g *Generator) nextBase0AuctionID(id int64, r *rng) int64 {
	last := g.lastBase0AuctionID(id)
	lo := max(last-int64(g.cfg.NumInFlightAuctions), 0)
	return lo + r.longn(last-lo+1+auctionIDLead)
}

// nextAuctionLengthMs is AuctionGenerator.nextAuctionLengthMs: up to twice
// the time until NumInFlightAuctions more auctions exist.
func (g *Generator) nextAuctionLengthMs(c int64, r *rng, ts int64) int64 {
	cur := g.adjusted(c)
	events := int64(g.cfg.NumInFlightAuctions) * g.total / int64(g.cfg.AuctionProportion)
	horizon := g.timestamp(cur+events) - ts
	return 1 + r.longn(max(horizon*2, 1))
}

// nextPrice is PriceGenerator.nextPrice: 10^[0,6) dollars, in cents.
func nextPrice(r *rng) int64 {
	return int64(math.Floor(math.Pow(10, r.float64()*6)*100 + 0.5))
}

// nextString is StringsGenerator.nextString: 3 to maxLength-1 letters,
// about one in 13 replaced by special, trimmed of spaces.
func nextString(r *rng, maxLength int, special byte) string {
	n := minStringLength + r.intn(maxLength-minStringLength)
	b := make([]byte, n)
	for i := range b {
		if r.intn(13) == 0 {
			b[i] = special
		} else {
			b[i] = byte('a' + r.intn(26))
		}
	}
	return strings.Trim(string(b), " ")
}

// nextExtra is StringsGenerator.nextExtra: padding that brings an event of
// size to about avg bytes (±20%), cut from one shared random string.
func nextExtra(r *rng, size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int(math.Floor(float64(avg)*0.2 + 0.5))
	n := avg - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	extra := statics().extra
	if n >= len(extra)/2 {
		return exactString(r, n)
	}
	off := r.intn(len(extra) - n)
	return extra[off : off+n]
}

// exactString is the slow path of StringsGenerator.nextExactString. Like
// the reference (Java's remainder of a negative int), it also yields
// letters below 'a'.
func exactString(r *rng, n int) string {
	b := make([]byte, n)
	var rnd int32
	left := 0
	for i := range b {
		if left == 0 {
			rnd, left = int32(r.next()), 6
		}
		b[i] = byte('a' + rnd%26)
		rnd /= 26
		left--
	}
	return string(b)
}

var (
	usStates   = strings.Split("AZ,CA,ID,OR,WA,WY", ",")
	usCities   = strings.Split("Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne", ",")
	firstNames = strings.Split("Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter", ",")
	lastNames  = strings.Split("Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris", ",")

	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
)

type channel struct{ name, url string }

// tables are the reference's static data, made once from a fixed seed
// (the reference uses an unseeded random generator).
type tables struct {
	extra       string // REUSABLE_EXTRA_STRING, 1 MiB
	creditCards []string
	hotURLs     []string
	channels    []channel
}

var statics = sync.OnceValue(func() *tables {
	r := newRand(0x4e65786d61726b, 0) // "Nexmark"
	t := &tables{extra: exactString(&r, 1<<20)}
	for i := range 10_000 {
		t.creditCards = append(t.creditCards, strconv.Itoa(10000 + i)[1:])
	}
	for range hotChannels {
		t.hotURLs = append(t.hotURLs, baseURL(&r))
	}
	t.channels = make([]channel, channelsNumber)
	for i := range t.channels {
		url := baseURL(&r)
		if r.intn(10) > 0 {
			rev := int64(int32(bits.Reverse32(uint32(i))))
			if rev < 0 {
				rev = -rev
			}
			url += "&channel_id=" + strconv.FormatInt(rev, 10)
		}
		t.channels[i] = channel{"channel-" + strconv.Itoa(i), url}
	}
	return t
})

func baseURL(r *rng) string {
	return "https://www.nexmark.com/" + nextString(r, 5, '_') + "/" + nextString(r, 5, '_') + "/" +
		nextString(r, 5, '_') + "/item.htm?query=1"
}

// rng is SplitMix64 (the algorithm of Java's SplittableRandom), seeded per
// event from the event id.
type rng struct{ s uint64 }

const golden = 0x9e3779b97f4a7c15

func newRand(seed, stream uint64) rng { return rng{mix64(seed ^ mix64(stream*golden+golden))} }

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) next() uint64 {
	r.s += golden
	return mix64(r.s)
}

// longn returns a uniform number in [0, n), n > 0 (Lemire's method).
func (r *rng) longn(n int64) int64 {
	un := uint64(n)
	hi, lo := bits.Mul64(r.next(), un)
	if lo < un {
		for thresh := -un % un; lo < thresh; {
			hi, lo = bits.Mul64(r.next(), un)
		}
	}
	return int64(hi)
}

func (r *rng) intn(n int) int { return int(r.longn(int64(n))) }

// float64 returns a uniform number in [0, 1).
func (r *rng) float64() float64 { return float64(r.next()>>11) * 0x1p-53 }
