// Package queries holds the Nexmark queries as weir dataflows, with the
// semantics of nexmark-flink's reference SQL (queries/qN.sql) and its
// column names. jobs/nexmark runs them as a job binary; bench/nexmark
// measures them.
package queries

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources/nexmark"
)

// Output says where a query's rows go.
type Output struct {
	// Dir receives the rows as JSON lines through the exactly-once file
	// sink; "" discards them (benchmarks).
	Dir string
	// Count, when set, is called with the discarding sink's row counter.
	Count func(func() int64)
}

// Names lists the queries, in order.
func Names() []string {
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		x, _ := strconv.Atoi(a[1:])
		y, _ := strconv.Atoi(b[1:])
		return x - y
	})
	return names
}

// Attach builds query name on events and sends its rows to out.
func Attach(name string, events weir.Stream[nexmark.Event], out Output) error {
	q, ok := all[name]
	if !ok {
		return fmt.Errorf("no query %q (have %v)", name, Names())
	}
	q(events, out)
	return nil
}

var all = map[string]func(weir.Stream[nexmark.Event], Output){
	"q0":  func(e weir.Stream[nexmark.Event], out Output) { to(Q0(e), out) },
	"q1":  func(e weir.Stream[nexmark.Event], out Output) { to(Q1(e), out) },
	"q2":  func(e weir.Stream[nexmark.Event], out Output) { to(Q2(e), out) },
	"q3":  func(e weir.Stream[nexmark.Event], out Output) { to(Q3(e), out) },
	"q4":  func(e weir.Stream[nexmark.Event], out Output) { to(Q4(e), out) },
	"q5":  func(e weir.Stream[nexmark.Event], out Output) { to(Q5(e), out) },
	"q7":  func(e weir.Stream[nexmark.Event], out Output) { to(Q7(e), out) },
	"q8":  func(e weir.Stream[nexmark.Event], out Output) { to(Q8(e), out) },
	"q11": func(e weir.Stream[nexmark.Event], out Output) { to(Q11(e), out) },
}

// OutOfOrderness is the watermark delay of the reference's source table
// (WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND).
const OutOfOrderness = 4 * time.Second

// Source adds the Nexmark generator with the reference's watermarks to job.
func Source(job *weir.Job, cfg nexmark.Config, opts ...weir.OperatorOption) weir.Stream[nexmark.Event] {
	return weir.From(job, "nexmark", weir.WithWatermarks(nexmark.Source(cfg), weir.WatermarkStrategy[nexmark.Event]{
		Timestamp:      func(e nexmark.Event) int64 { return int64(e.Time()) },
		OutOfOrderness: OutOfOrderness,
	}), opts...)
}

// bids returns the bids of events (the reference's bid view).
func bids(events weir.Stream[nexmark.Event], name string) weir.Stream[nexmark.Bid] {
	return weir.FlatMap(events, name, func(e nexmark.Event, out weir.Emitter[nexmark.Bid]) {
		if e.Kind == nexmark.KindBid {
			out.Emit(e.Bid)
		}
	})
}

func to[T any](s weir.Stream[T], out Output) {
	if out.Dir != "" {
		weir.To(s, "out", sinks.JSONFiles[T](out.Dir))
		return
	}
	d := sinks.Discard[T]()
	weir.To(s, "discard", d)
	if out.Count != nil {
		out.Count(d.Count)
	}
}

// Q0Row is a row of q0 and q1's input columns.
type Q0Row struct {
	Auction  int64        `json:"auction"`
	Bidder   int64        `json:"bidder"`
	Price    int64        `json:"price"`
	DateTime nexmark.Time `json:"dateTime"`
	Extra    string       `json:"extra"`
}

// Q0 is the pass-through query: every bid's auction, bidder, price,
// dateTime and extra.
func Q0(events weir.Stream[nexmark.Event]) weir.Stream[Q0Row] {
	return weir.FlatMap(events, "q0", func(e nexmark.Event, out weir.Emitter[Q0Row]) {
		if e.Kind == nexmark.KindBid {
			b := &e.Bid
			out.Emit(Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra})
		}
	})
}

// Q1Row is a row of q1: the price in euros, DECIMAL(23, 3).
type Q1Row struct {
	Auction  int64        `json:"auction"`
	Bidder   int64        `json:"bidder"`
	Price    Decimal3     `json:"price"`
	DateTime nexmark.Time `json:"dateTime"`
	Extra    string       `json:"extra"`
}

// Q1 converts every bid's price from dollars to euros: 0.908 * price,
// exactly.
func Q1(events weir.Stream[nexmark.Event]) weir.Stream[Q1Row] {
	return weir.FlatMap(events, "q1", func(e nexmark.Event, out weir.Emitter[Q1Row]) {
		if e.Kind == nexmark.KindBid {
			b := &e.Bid
			out.Emit(Q1Row{Auction: b.Auction, Bidder: b.Bidder, Price: Decimal3(908 * b.Price), DateTime: b.DateTime, Extra: b.Extra})
		}
	})
}

// Q2Row is a row of q2.
type Q2Row struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

// Q2 selects the bids on every 123rd auction: MOD(auction, 123) = 0.
func Q2(events weir.Stream[nexmark.Event]) weir.Stream[Q2Row] {
	return weir.FlatMap(events, "q2", func(e nexmark.Event, out weir.Emitter[Q2Row]) {
		if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
			out.Emit(Q2Row{Auction: e.Bid.Auction, Price: e.Bid.Price})
		}
	})
}

// Q3Row is a row of q3: a seller and one of their auctions.
type Q3Row struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
	ID    int64  `json:"id"`
}

// q3Person is what q3 keeps of a person.
type q3Person struct {
	Name, City, State string
	Qualifies         bool // state OR, ID or CA
}

// Q3 is the local item suggestion query: the auctions of category 10 of
// sellers in Oregon, Idaho or California, an inner join of auctions and
// people on seller = id that, like the reference's regular join, keeps
// both sides, so it matches whichever comes first. Keyed by person id: a
// person's auctions that arrive before the person are kept until it does
// (only while it is unknown; a person outside the three states ends them).
func Q3(events weir.Stream[nexmark.Event]) weir.Stream[Q3Row] {
	relevant := weir.Filter(events, "q3-filter", func(e nexmark.Event) bool {
		return e.Kind == nexmark.KindPerson || e.Kind == nexmark.KindAuction && e.Auction.Category == 10
	})
	byPerson := weir.KeyBy(relevant, func(e nexmark.Event) int64 {
		if e.Kind == nexmark.KindPerson {
			return e.Person.ID
		}
		return e.Auction.Seller
	})
	return weir.Process(byPerson, "q3-join", func(ctx weir.KeyedContext[int64], e nexmark.Event, out weir.Emitter[Q3Row]) error {
		person := weir.Value[q3Person](ctx, "person")
		early := weir.List[int64](ctx, "auctions")
		if e.Kind == nexmark.KindPerson {
			p := e.Person
			q := q3Person{Name: p.Name, City: p.City, State: p.State, Qualifies: p.State == "OR" || p.State == "ID" || p.State == "CA"}
			person.Set(q)
			if q.Qualifies {
				for id := range early.All() {
					out.Emit(Q3Row{Name: q.Name, City: q.City, State: q.State, ID: id})
				}
			}
			early.Clear()
			return nil
		}
		q, known := person.Lookup()
		switch {
		case !known:
			early.Add(e.Auction.ID)
		case q.Qualifies:
			out.Emit(Q3Row{Name: q.Name, City: q.City, State: q.State, ID: e.Auction.ID})
		}
		return nil
	})
}

// Q4Row is a row of q4: a category and the average closing price of its
// auctions so far. The reference names the columns id and final.
type Q4Row struct {
	ID    int64 `json:"id"`
	Final int64 `json:"final"`
}

// q4Auction is what q4 keeps of an auction.
type q4Auction struct {
	Category, DateTime, Expires int64
	Max                         int64 // highest price of a bid in its time; valid if HasMax
	HasMax                      bool
}

// q4Bid is a bid that arrived before its auction.
type q4Bid struct{ Price, DateTime int64 }

// q4Final is a change of an auction's closing price: Old is the price it
// replaces (HasOld false for the auction's first).
type q4Final struct {
	Category, Old, New int64
	HasOld             bool
}

// Q4 is the average closing price per category: the highest bid of each
// auction among the bids dated between its start and its expiry (a regular
// join of auctions and bids on id = auction, grouped by auction), averaged
// per category (integer average, as the reference's AVG of BIGINT). The
// result updates: one row each time a category's average changes, the
// last row per category being final.
func Q4(events weir.Stream[nexmark.Event]) weir.Stream[Q4Row] {
	relevant := weir.Filter(events, "q4-filter", func(e nexmark.Event) bool { return e.Kind != nexmark.KindPerson })
	byAuction := weir.KeyBy(relevant, func(e nexmark.Event) int64 {
		if e.Kind == nexmark.KindAuction {
			return e.Auction.ID
		}
		return e.Bid.Auction
	})
	finals := weir.Process(byAuction, "q4-max", func(ctx weir.KeyedContext[int64], e nexmark.Event, out weir.Emitter[q4Final]) error {
		auction := weir.Value[q4Auction](ctx, "auction")
		early := weir.List[q4Bid](ctx, "bids")
		a, known := auction.Lookup()
		bid := func(price, at int64) {
			if at < a.DateTime || at > a.Expires || a.HasMax && price <= a.Max {
				return
			}
			out.Emit(q4Final{Category: a.Category, Old: a.Max, New: price, HasOld: a.HasMax})
			a.Max, a.HasMax = price, true
		}
		if e.Kind == nexmark.KindAuction {
			x := e.Auction
			a = q4Auction{Category: x.Category, DateTime: int64(x.DateTime), Expires: int64(x.Expires)}
			for b := range early.All() {
				bid(b.Price, b.DateTime)
			}
			early.Clear()
			auction.Set(a)
			return nil
		}
		if !known {
			early.Add(q4Bid{Price: e.Bid.Price, DateTime: int64(e.Bid.DateTime)})
			return nil
		}
		had := a.HasMax
		old := a.Max
		bid(e.Bid.Price, int64(e.Bid.DateTime))
		if a.HasMax != had || a.Max != old {
			auction.Set(a)
		}
		return nil
	})
	byCategory := weir.KeyBy(finals, func(f q4Final) int64 { return f.Category })
	return weir.Process(byCategory, "q4-avg", func(ctx weir.KeyedContext[int64], f q4Final, out weir.Emitter[Q4Row]) error {
		sum := weir.Value[int64](ctx, "sum")
		count := weir.Value[int64](ctx, "count")
		s, n := sum.Get()+f.New, count.Get()
		if f.HasOld {
			s -= f.Old
		} else {
			n++
			count.Set(n)
		}
		sum.Set(s)
		out.Emit(Q4Row{ID: f.Category, Final: s / n})
		return nil
	})
}

// Q5Row is a row of q5: an auction with the most bids in a window.
type Q5Row struct {
	Auction int64 `json:"auction"`
	Num     int64 `json:"num"`
}

type countBids struct{}

func (countBids) Zero() int64                      { return 0 }
func (countBids) Add(n int64, _ nexmark.Bid) int64 { return n + 1 }
func (countBids) Result(n int64) int64             { return n }
func (countBids) Merge(a, b int64) int64           { return a + b }

// Q5 is the hot items query: for every window of 10 s that starts every
// 2 s (HOP), the auctions with the most bids in it (all of them on a tie).
// Bids are counted per auction and window; the counts of a window meet in
// one keyed task that keeps the auctions at the highest count and emits
// them when the watermark passes the window's end, when every count has
// arrived.
func Q5(events weir.Stream[nexmark.Event]) weir.Stream[Q5Row] {
	b := bids(events, "q5-bids")
	counts := weir.WindowAggregate(weir.KeyBy(b, func(b nexmark.Bid) int64 { return b.Auction }), "q5-count",
		weir.Sliding(10*time.Second, 2*time.Second), func(b nexmark.Bid) int64 { return int64(b.DateTime) },
		weir.Aggregator[nexmark.Bid, int64, int64](countBids{}))
	byWindow := weir.KeyBy(counts, func(r weir.WindowResult[int64, int64]) int64 { return r.Window.End })
	return weir.KeyedProcess(byWindow, "q5-max",
		func(ctx weir.KeyedContext[int64], r weir.WindowResult[int64, int64], _ weir.Emitter[Q5Row]) error {
			top := weir.Value[int64](ctx, "max")
			at := weir.List[int64](ctx, "auctions")
			switch m, ok := top.Lookup(); {
			case !ok || r.Value > m:
				top.Set(r.Value)
				at.Update([]int64{r.Key})
				ctx.Timers().Register(r.Window.End - 1)
			case r.Value == m:
				at.Add(r.Key)
			}
			return nil
		},
		func(ctx weir.KeyedContext[int64], _ int64, out weir.Emitter[Q5Row]) error {
			top := weir.Value[int64](ctx, "max")
			at := weir.List[int64](ctx, "auctions")
			n := top.Get()
			for a := range at.All() {
				out.Emit(Q5Row{Auction: a, Num: n})
			}
			top.Clear()
			at.Clear()
			return nil
		})
}

// Q7Row is a row of q7: a bid at the highest price of its window. The
// reference SQL inserts price and bidder into each other's sink columns by
// position; here each value is under its own name.
type Q7Row struct {
	Auction  int64        `json:"auction"`
	Bidder   int64        `json:"bidder"`
	Price    int64        `json:"price"`
	DateTime nexmark.Time `json:"dateTime"`
	Extra    string       `json:"extra"`
}

// q7Bid is a bid routed to the window that starts at Start. A bid dated at
// a window's end is also a candidate of the window it ends (the reference
// joins on dateTime BETWEEN end - 10 s AND end, both included) but does not
// count towards its highest price.
type q7Bid struct {
	Start  int64
	Bid    Q7Row
	Counts bool
}

const q7Window = 10_000 // ms

// tenSeconds are the 10 s tumbling windows of q7 and q8.
var tenSeconds = weir.Tumbling(q7Window * time.Millisecond)

// Q7 is the highest bid query: the bids at the highest price of each 10 s
// tumbling window, emitted when the watermark passes the window's end.
func Q7(events weir.Stream[nexmark.Event]) weir.Stream[Q7Row] {
	routed := weir.FlatMap(events, "q7-bids", func(e nexmark.Event, out weir.Emitter[q7Bid]) {
		if e.Kind != nexmark.KindBid {
			return
		}
		b := &e.Bid
		t := int64(b.DateTime)
		row := Q7Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}
		start := tenSeconds.LastStart(t)
		out.Emit(q7Bid{Start: start, Bid: row, Counts: true})
		if t == start {
			out.Emit(q7Bid{Start: start - q7Window, Bid: row})
		}
	})
	byWindow := weir.KeyBy(routed, func(b q7Bid) int64 { return b.Start })
	return weir.KeyedProcess(byWindow, "q7-max",
		func(ctx weir.KeyedContext[int64], b q7Bid, _ weir.Emitter[Q7Row]) error {
			top := weir.Value[int64](ctx, "max")
			cands := weir.List[Q7Row](ctx, "candidates")
			m, ok := top.Lookup()
			if b.Counts && (!ok || b.Bid.Price > m) {
				m, ok = b.Bid.Price, true
				top.Set(m)
				// Only bids at or above the highest price can be at it.
				var keep []Q7Row
				for c := range cands.All() {
					if c.Price >= m {
						keep = append(keep, c)
					}
				}
				cands.Update(keep)
				ctx.Timers().Register(b.Start + q7Window - 1)
			}
			if !ok || b.Bid.Price >= m {
				cands.Add(b.Bid)
			}
			return nil
		},
		func(ctx weir.KeyedContext[int64], _ int64, out weir.Emitter[Q7Row]) error {
			top := weir.Value[int64](ctx, "max")
			cands := weir.List[Q7Row](ctx, "candidates")
			if m, ok := top.Lookup(); ok {
				for c := range cands.All() {
					if c.Price == m {
						out.Emit(c)
					}
				}
			}
			top.Clear()
			cands.Clear()
			return nil
		})
}

// Q8Row is a row of q8: a person who opened an auction in the 10 s window
// in which they registered.
type Q8Row struct {
	ID    int64        `json:"id"`
	Name  string       `json:"name"`
	STime nexmark.Time `json:"stime"`
}

// q8Key is a person (or seller) and a window start.
type q8Key struct{ ID, Start int64 }

// Q8 is the new users query: people who registered and opened an auction
// in the same 10 s tumbling window, a window join of people and auctions on
// id = seller, emitted when the watermark passes the window's end.
func Q8(events weir.Stream[nexmark.Event]) weir.Stream[Q8Row] {
	relevant := weir.Filter(events, "q8-filter", func(e nexmark.Event) bool { return e.Kind != nexmark.KindBid })
	byPersonWindow := weir.KeyBy(relevant, func(e nexmark.Event) q8Key {
		t := int64(e.Time())
		start := tenSeconds.LastStart(t)
		if e.Kind == nexmark.KindPerson {
			return q8Key{e.Person.ID, start}
		}
		return q8Key{e.Auction.Seller, start}
	})
	return weir.KeyedProcess(byPersonWindow, "q8-join",
		func(ctx weir.KeyedContext[q8Key], e nexmark.Event, _ weir.Emitter[Q8Row]) error {
			if e.Kind == nexmark.KindPerson {
				weir.Value[string](ctx, "name").Set(e.Person.Name)
			} else {
				weir.Value[bool](ctx, "auction").Set(true)
			}
			ctx.Timers().Register(ctx.Key().Start + q7Window - 1)
			return nil
		},
		func(ctx weir.KeyedContext[q8Key], _ int64, out weir.Emitter[Q8Row]) error {
			name := weir.Value[string](ctx, "name")
			auction := weir.Value[bool](ctx, "auction")
			if n, ok := name.Lookup(); ok && auction.Get() {
				out.Emit(Q8Row{ID: ctx.Key().ID, Name: n, STime: nexmark.Time(ctx.Key().Start)})
			}
			name.Clear()
			auction.Clear()
			return nil
		})
}

// Q11Row is a row of q11: a bidder's session and its bids.
type Q11Row struct {
	Bidder    int64        `json:"bidder"`
	BidCount  int64        `json:"bid_count"`
	StartTime nexmark.Time `json:"starttime"`
	EndTime   nexmark.Time `json:"endtime"`
}

// Q11 is the user sessions query: each bidder's bids in session windows
// with a 10 s gap, counted, emitted when the watermark passes a session's
// end.
func Q11(events weir.Stream[nexmark.Event]) weir.Stream[Q11Row] {
	byBidder := weir.KeyBy(bids(events, "q11-bids"), func(b nexmark.Bid) int64 { return b.Bidder })
	sessions := weir.WindowAggregate(byBidder, "q11-sessions", weir.Sessions(10*time.Second),
		func(b nexmark.Bid) int64 { return int64(b.DateTime) }, weir.Aggregator[nexmark.Bid, int64, int64](countBids{}))
	return weir.Map(sessions, "q11-rows", func(r weir.WindowResult[int64, int64]) Q11Row {
		return Q11Row{Bidder: r.Key, BidCount: r.Value, StartTime: nexmark.Time(r.Window.Start), EndTime: nexmark.Time(r.Window.End)}
	})
}

// Decimal3 is a decimal number with three digits after the point, held in
// thousandths: Decimal3(1500) is 1.500. JSON writes it as a number with
// exactly three decimals.
type Decimal3 int64

func (d Decimal3) String() string {
	v := int64(d)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%03d", sign, v/1000, v%1000)
}

// MarshalJSON implements json.Marshaler.
func (d Decimal3) MarshalJSON() ([]byte, error) { return []byte(d.String()), nil }
