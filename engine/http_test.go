package engine

import "testing"

func TestListenAddr(t *testing.T) {
	for _, c := range []struct {
		in, bind string
		loopback bool
		bad      bool
	}{
		{":8080", "127.0.0.1:8080", true, false},
		{"127.0.0.1:0", "127.0.0.1:0", true, false},
		{"localhost:9", "localhost:9", true, false},
		{"[::1]:9", "[::1]:9", true, false},
		{"0.0.0.0:8080", "0.0.0.0:8080", false, false},
		{"10.1.2.3:80", "10.1.2.3:80", false, false},
		{"8080", "", false, true},
	} {
		bind, loopback, err := listenAddr(c.in)
		if (err != nil) != c.bad || bind != c.bind || loopback != c.loopback {
			t.Errorf("listenAddr(%q) = %q, %v, %v; want %q, %v, error %v", c.in, bind, loopback, err, c.bind, c.loopback, c.bad)
		}
	}
}
