package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestReadCommitted runs testdata/read_committed: a partition's batches
// ("batch BASE pid=P txn records=N", "commit BASE pid=P", "abort BASE
// pid=P", "plain BASE records=N"), then "fetch from=F aborted=P@O,..."
// prints the offsets kept and the next offset to fetch.
func TestReadCommitted(t *testing.T) {
	datadriven.RunTest(t, "testdata/read_committed", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "fetch":
			var batches []fetchedBatch
			for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
				batches = append(batches, parseBatch(t, line))
			}
			var from int64
			var aborted []abortedTxn
			for _, a := range d.CmdArgs {
				switch a.Key {
				case "from":
					from, _ = strconv.ParseInt(a.Vals[0], 10, 64)
				case "aborted":
					for _, v := range a.Vals {
						p, o, _ := strings.Cut(v, "@")
						pid, _ := strconv.ParseInt(p, 10, 64)
						off, _ := strconv.ParseInt(o, 10, 64)
						aborted = append(aborted, abortedTxn{pid, off})
					}
				}
			}
			recs, next := readCommitted(batches, aborted, from, nil)
			var b strings.Builder
			b.WriteString("kept:")
			for _, r := range recs {
				fmt.Fprintf(&b, " %d", r.Offset)
			}
			fmt.Fprintf(&b, "\nnext: %d\n", next)
			return b.String()
		}
		t.Fatalf("unknown command %s", d.Cmd)
		return ""
	})
}

func parseBatch(t *testing.T, line string) fetchedBatch {
	f := strings.Fields(line)
	base, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	b := fetchedBatch{base: base, last: base, producerID: -1}
	n := 0
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pid":
			b.producerID, _ = strconv.ParseInt(v, 10, 64)
		case "records":
			n, _ = strconv.Atoi(v)
		case "txn":
			b.transactional = true
		}
	}
	switch f[0] {
	case "batch", "plain":
	case "commit", "abort":
		b.control, b.transactional, b.abortMarker = true, true, f[0] == "abort"
		n = 1
	default:
		t.Fatalf("unknown batch kind %q", f[0])
	}
	for i := 0; i < n; i++ {
		if !b.control {
			b.records = append(b.records, Record{Offset: base + int64(i)})
		}
	}
	b.last = base + int64(n) - 1
	return b
}
