package integration

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's headless browser, or skips the test (fails it
// when WEIR_REQUIRE_CHROMIUM is set, as scripts/test does once it found
// or installed one).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WEIR_REQUIRE_CHROMIUM") != "" {
		t.Fatal("WEIR_REQUIRE_CHROMIUM is set but no chromium is on PATH")
	}
	t.Skip("no chromium on PATH (Debian: apt-get install chromium)")
	return ""
}

// TestStatusPage loads the job binary's status page in headless Chromium
// once a few checkpoints completed, and inspects what it drew: the DOM
// has the job graph's operators and the checkpoint rows, and the
// screenshot has the graph's boxes and the chart's bars in their colours.
func TestStatusPage(t *testing.T) {
	browser := chromium(t)
	p, url := httpJob(t, "--http", "127.0.0.1:0")
	defer func() {
		p.cmd.Process.Kill()
		p.wait(t)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := httpDo(t, "GET", url+"/api/checkpoints", "")
		if strings.Count(body, `"completed"`) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 checkpoints after 30 s:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	headless := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		a := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,900",
			"--virtual-time-budget=4000", "--user-data-dir=" + t.TempDir()}, args...)
		out, err := exec.CommandContext(ctx, browser, append(a, url+"/")...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", browser, args, err)
		}
		return string(out)
	}
	dom := headless("--dump-dom")
	for _, want := range []string{">wordcount<", ">generator<", ">count<", "parallelism 2", "chained", "hash", `class="bar"`, "<td>periodic</td>", "<td>completed</td>"} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page's DOM lacks %s:\n%.3000s", want, dom)
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	headless("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Pixels of the page's colours: operator boxes (#2b6cb0), chained
	// operator boxes (#90cdf4), completed checkpoints' bars (#38a169).
	colours := map[[3]uint32]string{{0x2b, 0x6c, 0xb0}: "operator", {0x90, 0xcd, 0xf4}: "chained operator", {0x38, 0xa1, 0x69}: "completed bar"}
	counts := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if name, ok := colours[[3]uint32{r >> 8, g >> 8, bl >> 8}]; ok {
				counts[name]++
			}
		}
	}
	// Two boxes of each kind of 190×56 pixels (less their text), and at
	// least three bars of at least 4×2.
	if counts["operator"] < 2*190*56/2 || counts["chained operator"] < 2*190*56/2 || counts["completed bar"] < 3*4*2 {
		t.Fatalf("the screenshot lacks the graph or the chart: %v pixels (%dx%d)", counts, b.Dx(), b.Dy())
	}
	t.Logf("screenshot %dx%d: %v pixels", b.Dx(), b.Dy(), counts)
}
