package nexmark

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrConfig marks an invalid Config; check with errors.Is.
var ErrConfig = errors.New("nexmark: invalid config")

// Config is the generator's configuration: the options of the reference
// generator (nexmark-flink's NexmarkConfiguration) that shape the data.
// Start from DefaultConfig.
type Config struct {
	// Events is the number of events to generate (events.num); must be > 0.
	Events int64
	// Rate is the event-time rate in events per second (first-event.rate):
	// event n has time BaseTime + n/Rate. It does not pace the output,
	// which comes as fast as it is consumed (the reference's default,
	// maxEmitSpeed). The benchmark suite's TPS, 10,000,000, by default.
	Rate float64
	// BaseTime is the event time of event 0. The reference takes the wall
	// clock at job start; a fixed default keeps runs identical.
	BaseTime time.Time
	// Seed selects the random data; the same Config gives the same events.
	Seed uint64

	PersonProportion, AuctionProportion, BidProportion    int // 1, 3, 46
	AvgPersonByteSize, AvgAuctionByteSize, AvgBidByteSize int // 200, 500, 100
	// A bid goes to a hot auction (every 100th) with probability
	// 1-1/HotAuctionRatio, and so on for sellers and bidders.
	HotAuctionRatio, HotSellersRatio, HotBiddersRatio int // 2, 4, 4
	// NumInFlightAuctions is how many recent auctions bids pick among;
	// NumActivePeople how many recent people sellers and bidders are.
	NumInFlightAuctions, NumActivePeople int // 100, 1000
	// OutOfOrderGroupSize shuffles event times within groups of that many
	// events (1: in order).
	OutOfOrderGroupSize int64
}

// DefaultBaseTime is the default BaseTime, the one of the Beam Nexmark
// suite the reference generator was ported from.
var DefaultBaseTime = time.Date(2015, 7, 15, 0, 0, 0, 0, time.UTC)

// DefaultConfig returns the reference defaults for n events.
func DefaultConfig(events int64) Config {
	return Config{
		Events:              events,
		Rate:                10_000_000,
		BaseTime:            DefaultBaseTime,
		PersonProportion:    1,
		AuctionProportion:   3,
		BidProportion:       46,
		AvgPersonByteSize:   200,
		AvgAuctionByteSize:  500,
		AvgBidByteSize:      100,
		HotAuctionRatio:     2,
		HotSellersRatio:     4,
		HotBiddersRatio:     4,
		NumInFlightAuctions: 100,
		NumActivePeople:     1000,
		OutOfOrderGroupSize: 1,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Events <= 0:
		return bad("Events must be > 0, got %d", c.Events)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return bad("Rate must be a finite number > 0, got %v", c.Rate)
	case c.PersonProportion < 1 || c.AuctionProportion < 1 || c.BidProportion < 1:
		return bad("proportions must be >= 1, got %d:%d:%d", c.PersonProportion, c.AuctionProportion, c.BidProportion)
	case c.AvgPersonByteSize < 0 || c.AvgAuctionByteSize < 0 || c.AvgBidByteSize < 0:
		return bad("average byte sizes must be >= 0")
	case c.HotAuctionRatio < 1 || c.HotSellersRatio < 1 || c.HotBiddersRatio < 1:
		return bad("hot ratios must be >= 1, got %d, %d, %d", c.HotAuctionRatio, c.HotSellersRatio, c.HotBiddersRatio)
	case c.NumInFlightAuctions < 1 || c.NumActivePeople < 1:
		return bad("NumInFlightAuctions and NumActivePeople must be >= 1")
	case c.OutOfOrderGroupSize < 1:
		return bad("OutOfOrderGroupSize must be >= 1, got %d", c.OutOfOrderGroupSize)
	}
	return nil
}

func (c Config) totalProportion() int64 {
	return int64(c.PersonProportion + c.AuctionProportion + c.BidProportion)
}
