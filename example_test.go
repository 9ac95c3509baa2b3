package weir_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

type WordCount struct {
	Word  string
	Count int64
}

// A word count: split lines into words, count every word in keyed state,
// print one update per word.
func Example() {
	job := weir.NewJob("wordcount", weir.DefaultParallelism(1))
	lines := weir.From(job, "lines", sources.Slice([]string{"to be or not to be", "to see"}))
	words := weir.FlatMap(lines, "split", func(line string, out weir.Emitter[string]) {
		for _, w := range strings.Fields(line) {
			out.Emit(w)
		}
	})
	byWord := weir.KeyBy(words, func(w string) string { return w })
	counts := weir.Process(byWord, "count", func(ctx weir.KeyedContext[string], w string, out weir.Emitter[WordCount]) error {
		n := weir.Value[int64](ctx, "n")
		n.Set(n.Get() + 1)
		out.Emit(WordCount{Word: w, Count: n.Get()})
		return nil
	})
	weir.To(counts, "print", sinks.Print[WordCount](nil))
	if err := job.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {to 1}
	// {be 1}
	// {or 1}
	// {not 1}
	// {to 2}
	// {be 2}
	// {to 3}
	// {see 1}
}

// Map and Filter are chained into the source's goroutine.
func ExampleMap() {
	job := weir.NewJob("squares", weir.DefaultParallelism(1))
	nums := weir.From(job, "numbers", sources.Slice([]int{1, 2, 3, 4, 5, 6}))
	squares := weir.Map(nums, "square", func(v int) int { return v * v })
	even := weir.Filter(squares, "even", func(v int) bool { return v%2 == 0 })
	weir.To(even, "print", sinks.Print[int](nil))
	if err := job.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 4
	// 16
	// 36
}

// Reduce emits the running reduction of every key.
func ExampleReduce() {
	type sale struct {
		Shop   string
		Amount int
	}
	job := weir.NewJob("sales", weir.DefaultParallelism(1))
	sales := weir.From(job, "sales", sources.Slice([]sale{{"north", 5}, {"south", 7}, {"north", 3}}))
	totals := weir.Reduce(weir.KeyBy(sales, func(s sale) string { return s.Shop }), "total",
		func(acc, s sale) sale { return sale{Shop: acc.Shop, Amount: acc.Amount + s.Amount} })
	weir.To(totals, "print", sinks.Print[sale](nil))
	if err := job.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {north 5}
	// {south 7}
	// {north 8}
}

// A keyed process function can keep several kinds of state per key.
func ExampleProcess() {
	type visit struct{ User, Page string }
	job := weir.NewJob("visits", weir.DefaultParallelism(1))
	visits := weir.From(job, "visits", sources.Slice([]visit{
		{"ann", "/"}, {"bob", "/"}, {"ann", "/docs"}, {"ann", "/"},
	}))
	byUser := weir.KeyBy(visits, func(v visit) string { return v.User })
	report := weir.Process(byUser, "pages", func(ctx weir.KeyedContext[string], v visit, out weir.Emitter[string]) error {
		perPage := weir.MapOf[string, int64](ctx, "per-page")
		n, _ := perPage.Get(v.Page)
		perPage.Put(v.Page, n+1)
		path := weir.List[string](ctx, "path")
		path.Add(v.Page)
		out.Emit(fmt.Sprintf("%s: %s seen %d times, path %v", ctx.Key(), v.Page, n+1, path.Get()))
		return nil
	})
	weir.To(report, "print", sinks.Print[string](nil))
	if err := job.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// ann: / seen 1 times, path [/]
	// bob: / seen 1 times, path [/]
	// ann: /docs seen 1 times, path [/ /docs]
	// ann: / seen 2 times, path [/ /docs /]
}
