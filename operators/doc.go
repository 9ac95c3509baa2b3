// Package operators holds the operators that the weir API chains into
// tasks — map, filter, flatMap, the keyed process function, rolling reduce
// and aggregate, and the sink adapter — together with the types an operator
// hands to user functions: Emitter and KeyedContext, and the keyed state
// accessors.
//
// Every operator consumes whole batches: it runs the user function over a
// batch and hands its own output batch, which it reuses, to the next
// operator. The engine wraps every operator so that an error or a panic is
// attributed to it. Later steps add timers, windows and joins here.
package operators
