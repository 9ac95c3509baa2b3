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
