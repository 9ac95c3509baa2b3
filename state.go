package weir

import (
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/statebackend"
)

// StateContext gives access to keyed state; every KeyedContext is one.
type StateContext = operators.StateContext

// ValueState is one value per key.
type ValueState[V any] = statebackend.Value[V]

// MapState is a map per key.
type MapState[K, V any] = statebackend.Map[K, V]

// ListState is a list per key; adding does not read the list.
type ListState[V any] = statebackend.List[V]

// ReducingState is one value per key into which added values are folded.
type ReducingState[V any] = statebackend.Reducing[V]

// Value returns the value state called name of the current key. Its
// accessors report no errors: a storage error fails the operator once the
// function returns.
func Value[V any](ctx StateContext, name string) *ValueState[V] {
	return operators.Value[V](ctx, name)
}

// MapOf returns the map state called name of the current key.
func MapOf[K, V any](ctx StateContext, name string) *MapState[K, V] {
	return operators.MapOf[K, V](ctx, name)
}

// List returns the list state called name of the current key.
func List[V any](ctx StateContext, name string) *ListState[V] {
	return operators.List[V](ctx, name)
}

// Reducing returns the reducing state called name of the current key;
// reduce folds each added value into it.
func Reducing[V any](ctx StateContext, name string, reduce func(acc, v V) V) *ReducingState[V] {
	return operators.Reducing(ctx, name, reduce)
}
