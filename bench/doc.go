// Package bench holds benchmark drivers that report events/s per core,
// bytes per record and peak memory. Run them with
//
//	go test -run '^$' -bench . -benchmem ./bench/
//
// and compare variants with benchstat. Figures and how they were taken are
// in docs/architecture.md.
package bench
