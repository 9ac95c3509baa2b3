package queries

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources/nexmark"
)

const testEvents = 20_000

// testConfig spreads the events over 20 s of event time (1000 events per
// second), so that the windowed queries see several windows.
func testConfig() nexmark.Config {
	cfg := nexmark.DefaultConfig(testEvents)
	cfg.Rate = 1000
	return cfg
}

// events returns the generated events, computed by the generator directly.
func events(t *testing.T) []nexmark.Event {
	t.Helper()
	cfg := testConfig()
	g, err := nexmark.NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]nexmark.Event, cfg.Events)
	for c := range out {
		g.Event(int64(c), &out[c])
	}
	return out
}

// runQuery runs build over the generated events at parallelism 3 and
// returns its rows as JSON lines, sorted (parallel subtasks interleave).
func runQuery[T any](t *testing.T, build func(weir.Stream[nexmark.Event]) weir.Stream[T]) []string {
	t.Helper()
	job := weir.NewJob("nexmark-test", weir.DefaultParallelism(3))
	c := sinks.Collect[T]()
	weir.To(build(Source(job, testConfig())), "collect", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return jsonLines(t, c.Values())
}

// jsonLines returns rows as canonical JSON lines (keys sorted, numbers as
// written), sorted.
func jsonLines[T any](t *testing.T, rows []T) []string {
	t.Helper()
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = canonical(t, b)
	}
	slices.Sort(out)
	return out
}

func canonical(t *testing.T, line []byte) string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(line)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func check(t *testing.T, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the expected output is empty: the test checks nothing")
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("row %d of %d:\n got %s\nwant %s", i, len(want), got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
}

// The expected rows are computed from the events with maps of column names
// to values, as the reference SQL reads, independently of the query code.

func TestQ0(t *testing.T) {
	var want []map[string]any
	for _, e := range events(t) {
		if e.Kind == nexmark.KindBid {
			b := e.Bid
			want = append(want, map[string]any{"auction": b.Auction, "bidder": b.Bidder, "price": b.Price,
				"dateTime": b.DateTime.String(), "extra": b.Extra})
		}
	}
	check(t, runQuery(t, Q0), jsonLines(t, want))
}

func TestQ1(t *testing.T) {
	var want []map[string]any
	for _, e := range events(t) {
		if e.Kind == nexmark.KindBid {
			b := e.Bid
			// 0.908 * price with three decimals, from the digits.
			euros := json.Number(fmt.Sprintf("%d.%03d", b.Price*908/1000, b.Price*908%1000))
			want = append(want, map[string]any{"auction": b.Auction, "bidder": b.Bidder, "price": euros,
				"dateTime": b.DateTime.String(), "extra": b.Extra})
		}
	}
	check(t, runQuery(t, Q1), jsonLines(t, want))
}

func TestQ2(t *testing.T) {
	var want []map[string]any
	for _, e := range events(t) {
		if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
			want = append(want, map[string]any{"auction": e.Bid.Auction, "price": e.Bid.Price})
		}
	}
	check(t, runQuery(t, Q2), jsonLines(t, want))
}

func TestDecimal3(t *testing.T) {
	for d, want := range map[Decimal3]string{0: "0.000", 1: "0.001", 1500: "1.500", -1: "-0.001", -123456: "-123.456"} {
		if got := d.String(); got != want {
			t.Errorf("Decimal3(%d) = %s, want %s", int64(d), got, want)
		}
	}
}

// TestAttach runs a query through Attach into the file sink and reads the
// committed files back.
func TestAttach(t *testing.T) {
	dir := t.TempDir()
	job := weir.NewJob("nexmark-test", weir.DefaultParallelism(2))
	if err := Attach("q2", Source(job, testConfig()), Output{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "part-*.jsonl"))
	var got []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			got = append(got, canonical(t, sc.Bytes()))
		}
		fh.Close()
	}
	slices.Sort(got)
	check(t, got, runQuery(t, Q2))
	if err := Attach("q99", weir.From(weir.NewJob("x"), "nexmark", nexmark.Source(nexmark.DefaultConfig(1))), Output{}); err == nil || !strings.Contains(err.Error(), "q99") {
		t.Fatalf("Attach of an unknown query: %v", err)
	}
}

func TestQ3(t *testing.T) {
	people := map[int64]*nexmark.Person{}
	var auctions []*nexmark.Auction
	for _, e := range events(t) {
		switch e.Kind {
		case nexmark.KindPerson:
			people[e.Person.ID] = e.Person
		case nexmark.KindAuction:
			auctions = append(auctions, e.Auction)
		}
	}
	var want []map[string]any
	for _, a := range auctions {
		p := people[a.Seller]
		if a.Category == 10 && p != nil && (p.State == "OR" || p.State == "ID" || p.State == "CA") {
			want = append(want, map[string]any{"name": p.Name, "city": p.City, "state": p.State, "id": a.ID})
		}
	}
	check(t, runQuery(t, Q3), jsonLines(t, want))
}

func TestQ4(t *testing.T) {
	// Closing price of each auction with a bid in its time, then the
	// integer average per category.
	var auctions []*nexmark.Auction
	var bids []nexmark.Bid
	for _, e := range events(t) {
		switch e.Kind {
		case nexmark.KindAuction:
			auctions = append(auctions, e.Auction)
		case nexmark.KindBid:
			bids = append(bids, e.Bid)
		}
	}
	sum, count := map[int64]int64{}, map[int64]int64{}
	for _, a := range auctions {
		best := int64(-1)
		for _, b := range bids {
			if b.Auction == a.ID && b.DateTime >= a.DateTime && b.DateTime <= a.Expires {
				best = max(best, b.Price)
			}
		}
		if best >= 0 {
			sum[a.Category] += best
			count[a.Category]++
		}
	}
	var want []map[string]any
	for c, n := range count {
		want = append(want, map[string]any{"id": c, "final": sum[c] / n})
	}
	// The last row per category is final.
	job := weir.NewJob("nexmark-test", weir.DefaultParallelism(3))
	c := sinks.Collect[Q4Row]()
	weir.To(Q4(Source(job, testConfig())), "collect", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := map[int64]Q4Row{}
	for _, r := range c.Values() {
		last[r.ID] = r
	}
	if len(c.Values()) <= len(last) {
		t.Fatalf("%d rows for %d categories: the result never updated", len(c.Values()), len(last))
	}
	check(t, jsonLines(t, slices.Collect(maps.Values(last))), jsonLines(t, want))
}

func TestQ5(t *testing.T) {
	const size, slide = 10_000, 2_000
	counts := map[int64]map[int64]int64{} // window start -> auction -> bids
	for _, e := range events(t) {
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts := int64(e.Bid.DateTime)
		for s := ts - ts%slide; s > ts-size; s -= slide {
			if counts[s] == nil {
				counts[s] = map[int64]int64{}
			}
			counts[s][e.Bid.Auction]++
		}
	}
	var want []map[string]any
	for _, byAuction := range counts {
		top := slices.Max(slices.Collect(maps.Values(byAuction)))
		for a, n := range byAuction {
			if n == top {
				want = append(want, map[string]any{"auction": a, "num": n})
			}
		}
	}
	if len(counts) < 10 {
		t.Fatalf("only %d windows: the test data is too short", len(counts))
	}
	check(t, runQuery(t, Q5), jsonLines(t, want))
}

func TestQ7(t *testing.T) {
	const size = 10_000
	var bids []nexmark.Bid
	top := map[int64]int64{} // window start -> highest price
	for _, e := range events(t) {
		if e.Kind == nexmark.KindBid {
			b := e.Bid
			bids = append(bids, b)
			s := int64(b.DateTime) - int64(b.DateTime)%size
			top[s] = max(top[s], b.Price)
		}
	}
	var want []map[string]any
	for s, m := range top {
		for _, b := range bids {
			// dateTime BETWEEN window_end - 10 s AND window_end.
			if ts := int64(b.DateTime); ts >= s && ts <= s+size && b.Price == m {
				want = append(want, map[string]any{"auction": b.Auction, "bidder": b.Bidder, "price": b.Price,
					"dateTime": b.DateTime.String(), "extra": b.Extra})
			}
		}
	}
	if len(top) < 2 {
		t.Fatalf("only %d windows", len(top))
	}
	check(t, runQuery(t, Q7), jsonLines(t, want))
}

func TestQ8(t *testing.T) {
	const size = 10_000
	type pw struct{ id, start int64 }
	names := map[pw]string{}
	sold := map[pw]bool{}
	for _, e := range events(t) {
		switch e.Kind {
		case nexmark.KindPerson:
			s := int64(e.Person.DateTime) - int64(e.Person.DateTime)%size
			names[pw{e.Person.ID, s}] = e.Person.Name
		case nexmark.KindAuction:
			s := int64(e.Auction.DateTime) - int64(e.Auction.DateTime)%size
			sold[pw{e.Auction.Seller, s}] = true
		}
	}
	var want []map[string]any
	for k, name := range names {
		if sold[k] {
			want = append(want, map[string]any{"id": k.id, "name": name, "stime": nexmark.Time(k.start).String()})
		}
	}
	check(t, runQuery(t, Q8), jsonLines(t, want))
}

func TestQ11(t *testing.T) {
	const gap = 10_000
	times := map[int64][]int64{} // bidder -> bid times
	for _, e := range events(t) {
		if e.Kind == nexmark.KindBid {
			times[e.Bid.Bidder] = append(times[e.Bid.Bidder], int64(e.Bid.DateTime))
		}
	}
	var want []map[string]any
	for bidder, ts := range times {
		slices.Sort(ts)
		start, n := ts[0], int64(0)
		for i, x := range ts {
			if i > 0 && x-ts[i-1] >= gap {
				want = append(want, map[string]any{"bidder": bidder, "bid_count": n,
					"starttime": nexmark.Time(start).String(), "endtime": nexmark.Time(ts[i-1] + gap).String()})
				start, n = x, 0
			}
			n++
		}
		want = append(want, map[string]any{"bidder": bidder, "bid_count": n,
			"starttime": nexmark.Time(start).String(), "endtime": nexmark.Time(ts[len(ts)-1] + gap).String()})
	}
	check(t, runQuery(t, Q11), jsonLines(t, want))
}
