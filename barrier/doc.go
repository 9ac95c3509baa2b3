// Package barrier defines the control events that travel in-band with the
// data between tasks — watermarks, checkpoint barriers, cancel markers and
// end-of-input — and the two small state machines a task with several
// inputs runs over them: the Aligner, which aligns checkpoint barriers, and
// the WatermarkMerger, which merges watermarks.
//
// Control events travel in the same ordered channel as the record batches of
// one sender, so a barrier or watermark never overtakes the records that were
// sent before it.
//
// # Aligned checkpoints
//
// When input i of a task delivers barrier n, input i is held back (blocked):
// what it sends after the barrier belongs to the time after checkpoint n and
// must not reach the snapshot. The task keeps reading its other inputs. When
// every live input delivered barrier n, the task takes its synchronous
// snapshot, forwards barrier n downstream and releases every input. An input
// that ended counts as having delivered every barrier.
//
//	                    (2) barrier n
//	          +---------+ ------------------> +--------------------+
//	    (1)   |         |                     | aligning(n, seen)  | ---+ (3) barrier n on an
//	   +----> | waiting |   (4) snapshot n    |                    |    |     unseen input, or
//	   |      |         | <------------------ | the seen inputs    |    |     barrier m > n
//	   +----- |         |   (5) abort n       | are blocked        | <--+     (abort n, align m)
//	          +---------+ <------------------ +--------------------+
//
//	(1) cancel marker or coordinator abort of m > done: ForwardCancel m.
//	(2) barrier n > done on input i: StartAlignment n; Block i. When i is
//	    the only live input, (4) follows in the same decision.
//	(3) barrier n on input i, which is not the last live input missing:
//	    Block i. Barrier m > n on input i: AbortAlignment n (Subsumed);
//	    ForwardCancel n; ReleaseAll; then as (2) for m: aligning(m, {i}).
//	(4) the last live input missing delivers barrier n, or ends:
//	    Snapshot n; ReleaseAll.
//	(5) cancel marker or coordinator abort of m >= n:
//	    AbortAlignment n; ForwardCancel m; ReleaseAll.
//
// done is the newest checkpoint snapshotted, aborted or cancelled. In every
// state, a barrier or cancel marker of a checkpoint at or below done, or
// below the one being aligned, is late and ignored (Ignore): its input is
// never blocked by it. So is anything from an input after its end-of-input.
// A cancel marker for m — or the coordinator aborting m — also makes every
// later barrier of m and older checkpoints late on all inputs, and is
// forwarded once so that downstream tasks stop waiting for m as well.
//
// EndOfInput(i) marks i ended in either state; in aligning it completes the
// alignment when i was the last live input missing. When no input is live
// any more the decision includes AllEnded: the task forwards end-of-input.
//
// # Decisions, not callbacks
//
// Flink's SingleCheckpointBarrierHandler sends its side effects through a
// Controller interface while a transition runs. The Aligner instead returns
// them as a Decision value, as raft's RawNode returns a Ready: each event
// method performs the transition completely and then says what the gate
// must do. This keeps the Aligner free of re-entrancy (the snapshot, which
// can fail or take milliseconds, never runs in the middle of a transition,
// and its error is the gate's to handle, not the state machine's), makes a
// test a comparison of printed values rather than a recording of fake calls,
// and fixes the order of the effects in one place (below) rather than in
// the order a transition happens to call them. The states themselves follow
// Flink: waiting and aligning are tiny types whose event methods return the
// next state.
//
// A Decision's Actions are performed in the order of their values:
// AbortAlignment, ForwardCancel, StartAlignment, Snapshot (take the
// snapshot, then forward the barrier), ReleaseAll, Block, Ignore, AllEnded.
// ReleaseAll comes before Block, so after "release all; block input=1" only
// input 1 is blocked.
//
// # What the gate does
//
// All senders of a gate share one channel, so the gate cannot stop reading
// a blocked input: it stashes the envelopes of blocked inputs, in order, and
// processes everything else. After a decision with ReleaseAll it replays the
// stashed envelopes of each released input as if they had just arrived:
// records are processed, and control events are fed to the Aligner again —
// a stashed barrier may block its input once more, and the rest of that
// input's stash then stays stashed. Blocked and Aligning tell the gate which
// inputs to stash.
//
// The Aligner has no clock. The gate times alignments itself: an alignment
// starts with StartAlignment and ends with Snapshot or AbortAlignment, so
// the gate can record alignment time and per-input alignment spans.
//
// # Watermarks
//
// Watermarks are not the Aligner's business. The WatermarkMerger tracks the
// watermark of each input and returns the merged one — the minimum over the
// inputs that have not ended — whenever it advances. It never goes back.
//
// Both machines are pure: no goroutines, channels, clock or I/O. One task
// goroutine owns each.
package barrier
