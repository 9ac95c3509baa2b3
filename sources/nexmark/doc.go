// Package nexmark generates the Nexmark benchmark's events: people
// registering, auctions opening and bids, in the proportions 1:3:46, as a
// port of the reference generator in nexmark-flink (github.com/nexmark/nexmark,
// generator/ and generator/model/): the same id schemes (people and auctions
// from 1000, categories from 10), hot auctions, sellers and bidders, the
// window of in-flight auctions and active people, field generation with
// `extra` padding to the average sizes, and event times spaced by Rate
// (first-event.rate).
//
// Where it departs from the reference:
//
//   - Determinism. The reference draws from an unseeded SplittableRandom, so
//     no two runs agree. Here every event draws from SplitMix64 seeded with
//     Config.Seed and the event's id: the same Config gives the same events,
//     and an event can be computed without the ones before it (a restored
//     source resumes from a count).
//   - Parallel subtasks. The reference gives each of p source splits its own
//     id range and its own event-time line (numEventGenerators = p). Here
//     subtask i emits events i, i+p, i+2p, ... of the single sequence that
//     the reference produces at parallelism 1, so the events do not depend
//     on the parallelism.
//   - BaseTime is fixed (DefaultBaseTime) instead of the wall clock at start.
//   - The static tables (the 1 MiB string that `extra` is cut from, the hot
//     URLs, the 10,000 channels) come from a fixed seed.
//
// Kept on purpose: BidGenerator adds FIRST_PERSON_ID to the bidder twice, so
// bidder ids run about 1000 above person ids; the reference's strings cut
// from the shared padding also contain letters below 'a' (Java's remainder
// of a negative int).
package nexmark
