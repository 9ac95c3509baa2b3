// Package queries holds the Nexmark queries as weir dataflows, with the
// semantics of nexmark-flink's reference SQL (queries/qN.sql) and its
// column names. jobs/nexmark runs them as a job binary; bench/nexmark
// measures them.
package queries

import (
	"fmt"
	"slices"
	"strconv"

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
	"q0": func(e weir.Stream[nexmark.Event], out Output) { to(Q0(e), out) },
	"q1": func(e weir.Stream[nexmark.Event], out Output) { to(Q1(e), out) },
	"q2": func(e weir.Stream[nexmark.Event], out Output) { to(Q2(e), out) },
	"q3": func(e weir.Stream[nexmark.Event], out Output) { to(Q3(e), out) },
	"q4": func(e weir.Stream[nexmark.Event], out Output) { to(Q4(e), out) },
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
