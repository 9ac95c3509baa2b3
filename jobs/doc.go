// Package jobs holds example job binaries, one main package each. Each is a
// complete weir job that runs with one command:
//
//	go run ./jobs/wordcount                      # built-in text generator
//	go run ./jobs/wordcount --input FILE --output DIR
//	go run ./jobs/sequence --keys 100 --count 1000 --output DIR
package jobs
