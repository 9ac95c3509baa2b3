package nexmark

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
)

func generate(t testing.TB, cfg Config) []Event {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Event, cfg.Events)
	for c := range out {
		g.Event(int64(c), &out[c])
	}
	return out
}

func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig(5000)
	a, b := generate(t, cfg), generate(t, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generators of one config differ")
	}
	cfg.Seed = 1
	c := generate(t, cfg)
	same := 0
	for i := range a {
		if reflect.DeepEqual(a[i], c[i]) {
			same++
		}
	}
	if same > len(a)/100 {
		t.Fatalf("seed 0 and seed 1 agree on %d of %d events", same, len(a))
	}
}

// TestMixAndIDs: the 1:3:46 mix by event id; people and auctions numbered
// consecutively from the reference's first ids; bids, sellers and bidders
// refer to existing or about-to-exist ids; categories 10-14.
func TestMixAndIDs(t *testing.T) {
	events := generate(t, DefaultConfig(50_000))
	var people, auctions, bids int
	lastPerson, lastAuction := int64(firstPersonID), int64(firstAuctionID)
	for c, e := range events {
		switch e.Kind {
		case KindPerson:
			people++
			if e.Person.ID != lastPerson+1 {
				t.Fatalf("event %d: person %d after %d", c, e.Person.ID, lastPerson)
			}
			lastPerson = e.Person.ID
		case KindAuction:
			auctions++
			a := e.Auction
			if a.ID != lastAuction+1 {
				t.Fatalf("event %d: auction %d after %d", c, a.ID, lastAuction)
			}
			lastAuction = a.ID
			if a.Seller < firstPersonID || a.Seller > lastPerson+personIDLead+1 {
				t.Fatalf("event %d: seller %d, last person %d", c, a.Seller, lastPerson)
			}
			if a.Category < 10 || a.Category > 14 || a.Reserve < a.InitialBid || a.Expires <= a.DateTime {
				t.Fatalf("event %d: bad auction %+v", c, a)
			}
		case KindBid:
			bids++
			b := e.Bid
			if b.Auction < firstAuctionID || b.Auction > lastAuction+auctionIDLead+1 {
				t.Fatalf("event %d: bid on auction %d, last auction %d", c, b.Auction, lastAuction)
			}
			// Bidders are offset twice by FIRST_PERSON_ID, as in the reference.
			if b.Bidder < 2*firstPersonID || b.Bidder > lastPerson+firstPersonID+personIDLead+1 {
				t.Fatalf("event %d: bidder %d, last person %d", c, b.Bidder, lastPerson)
			}
			if b.Price < 100 || b.Price > 100_000_000 {
				t.Fatalf("event %d: price %d", c, b.Price)
			}
		default:
			t.Fatalf("event %d: %v", c, e.Kind)
		}
	}
	if people != 1000 || auctions != 3000 || bids != 46000 {
		t.Fatalf("people:auctions:bids = %d:%d:%d, want 1000:3000:46000", people, auctions, bids)
	}
}

// TestDistributions checks the hot ratios and the padding against what
// the reference's parameters imply.
func TestDistributions(t *testing.T) {
	events := generate(t, DefaultConfig(200_000))
	var bids, hotAuction, hotChannel, extraBid int
	var people, extraPerson, auctions, extraAuction, auctionSize int
	for _, e := range events {
		switch e.Kind {
		case KindBid:
			bids++
			if e.Bid.Auction%100 == 0 {
				hotAuction++
			}
			if !strings.HasPrefix(e.Bid.Channel, "channel-") {
				hotChannel++
			}
			extraBid += len(e.Bid.Extra)
		case KindPerson:
			people++
			extraPerson += len(e.Person.Extra)
		case KindAuction:
			auctions++
			extraAuction += len(e.Auction.Extra)
			auctionSize += 48 + len(e.Auction.ItemName) + len(e.Auction.Description) + len(e.Auction.Extra)
		}
	}
	within := func(what string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.3f, want in [%.3f, %.3f]", what, got, lo, hi)
		}
	}
	// Hot auctions: half the bids, plus the random ones that land on a
	// multiple of 100.
	within("hot auction share", float64(hotAuction)/float64(bids), 0.49, 0.53)
	within("hot channel share", float64(hotChannel)/float64(bids), 0.49, 0.51)
	// A bid is 32 bytes plus padding to 100 ± 20%: 54 + [0, 28).
	within("mean bid extra", float64(extraBid)/float64(bids), 67, 68)
	within("mean auction size", float64(auctionSize)/float64(auctions), 480, 520)
	within("mean person extra", float64(extraPerson)/float64(people), 100, 160)
}

func TestEventTime(t *testing.T) {
	cfg := DefaultConfig(100)
	cfg.Rate = 1000 // one event per millisecond
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := DefaultBaseTime.UnixMilli()
	for c := range int64(100) {
		var e Event
		g.Event(c, &e)
		if want := Time(base + 1 + c); e.Time() != want || g.EventTime(c) != want || g.Watermark(c) != want {
			t.Fatalf("event %d at %v (watermark %v), want %v", c, e.Time(), g.Watermark(c), want)
		}
	}
	if got := Time(base).String(); got != "2015-07-15T00:00:00.000Z" {
		t.Fatalf("time formats as %s", got)
	}
}

func TestEventJSON(t *testing.T) {
	for _, e := range generate(t, DefaultConfig(60)) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip of %s gives %+v", b, back)
		}
		var raw map[string]any
		_ = json.Unmarshal(b, &raw)
		if len(raw) != 2 || raw[e.Kind.String()] == nil {
			t.Fatalf("%s: want event_type and %s only", b, e.Kind)
		}
	}
	if err := json.Unmarshal([]byte(`{"event_type":2}`), new(Event)); err == nil {
		t.Fatal("a bid event without a bid decoded")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Events = 0 },
		func(c *Config) { c.Rate = 0 },
		func(c *Config) { c.BidProportion = 0 },
		func(c *Config) { c.HotAuctionRatio = 0 },
		func(c *Config) { c.OutOfOrderGroupSize = 0 },
	} {
		cfg := DefaultConfig(10)
		mod(&cfg)
		if _, err := NewGenerator(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", cfg, err)
		}
	}
}

func readAll(t *testing.T, r weir.SourceReader[Event], limit int) []Event {
	t.Helper()
	var out []Event
	for len(out) < limit {
		batch, err := r.Read(context.Background(), make([]Event, 0, 7))
		out = append(out, batch...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestSourceSplitAndRestore: p subtasks together emit the sequence once,
// each in time order; a subtask restored from its position continues with
// exactly the events after it.
func TestSourceSplitAndRestore(t *testing.T) {
	cfg := DefaultConfig(1000)
	all := generate(t, cfg)
	src := Source(cfg).(weir.RestorableSource[Event])
	ctx := context.Background()
	const p = 3
	seen := make([]int, len(all))
	for i := range p {
		info := weir.SubtaskInfo{Index: i, Parallelism: p}
		r, err := src.Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		head := readAll(t, r, 100)
		pos, err := r.(weir.CheckpointedReader).Position()
		if err != nil {
			t.Fatal(err)
		}
		tail := readAll(t, r, len(all))
		r2, err := src.Restore(ctx, info, pos)
		if err != nil {
			t.Fatal(err)
		}
		if again := readAll(t, r2, len(all)); !reflect.DeepEqual(again, tail) {
			t.Fatalf("subtask %d: restored reader emits %d events, not the %d after the position", i, len(again), len(tail))
		}
		events := append(head, tail...)
		for k, e := range events {
			c := i + k*p
			if !reflect.DeepEqual(e, all[c]) {
				t.Fatalf("subtask %d: event %d is not event %d of the sequence", i, k, c)
			}
			seen[c]++
			if k > 0 && e.Time() < events[k-1].Time() {
				t.Fatalf("subtask %d: event %d earlier than the one before", i, k)
			}
		}
		if _, err := src.Restore(ctx, weir.SubtaskInfo{Index: i, Parallelism: p + 1}, pos); !errors.Is(err, ErrPosition) {
			t.Fatalf("restore at another parallelism: %v, want ErrPosition", err)
		}
		pos[len(pos)/2] ^= 1
		if _, err := src.Restore(ctx, info, pos); !errors.Is(err, ErrPosition) {
			t.Fatalf("restore from a damaged position: %v, want ErrPosition", err)
		}
	}
	for c, n := range seen {
		if n != 1 {
			t.Fatalf("event %d emitted %d times", c, n)
		}
	}
}

func BenchmarkGenerator(b *testing.B) {
	g, err := NewGenerator(DefaultConfig(1 << 62))
	if err != nil {
		b.Fatal(err)
	}
	var e Event
	b.ReportAllocs()
	start := time.Now()
	for c := range int64(b.N) {
		g.Event(c, &e)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
