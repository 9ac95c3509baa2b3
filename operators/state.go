package operators

import (
	"fmt"

	"github.com/weirstream/weir/statebackend"
)

// register returns the state registered under name in ctx's scope,
// creating it with create on first use. Asking for a name with another type
// than it was registered with is a programming error: it panics, and the
// engine fails the job naming the operator.
func register[S any](ctx StateContext, name string, create func(b *statebackend.Backend, full string) (*S, error)) *S {
	sc := ctx.stateScope()
	if st := sc.lookup(name); st != nil {
		s, ok := st.(*S)
		if !ok {
			panic(fmt.Sprintf("keyed state %q is a %T, asked for as %T", name, st, (*S)(nil)))
		}
		return s
	}
	s, err := create(sc.backend, sc.fullName(name))
	if err != nil {
		panic(fmt.Sprintf("keyed state %q: %v", name, err))
	}
	sc.states[name] = s
	return s
}

func codec[T any](what, name string) statebackend.Codec[T] {
	c, err := statebackend.CodecFor[T]()
	if err != nil {
		panic(fmt.Sprintf("keyed state %q: %s: %v", name, what, err))
	}
	return c
}

// Value returns the value state called name, scoped to the current key.
func Value[V any](ctx StateContext, name string) *statebackend.Value[V] {
	return register(ctx, name, func(b *statebackend.Backend, full string) (*statebackend.Value[V], error) {
		return statebackend.NewValue(b, full, codec[V]("value", name))
	})
}

// MapOf returns the map state called name, scoped to the current key.
func MapOf[K, V any](ctx StateContext, name string) *statebackend.Map[K, V] {
	return register(ctx, name, func(b *statebackend.Backend, full string) (*statebackend.Map[K, V], error) {
		return statebackend.NewMap(b, full, codec[K]("map key", name), codec[V]("map value", name))
	})
}

// List returns the list state called name, scoped to the current key.
func List[V any](ctx StateContext, name string) *statebackend.List[V] {
	return register(ctx, name, func(b *statebackend.Backend, full string) (*statebackend.List[V], error) {
		return statebackend.NewList(b, full, codec[V]("element", name))
	})
}

// Reducing returns the reducing state called name, scoped to the current
// key; reduce folds every added value into it. reduce is used when the state
// is first registered.
func Reducing[V any](ctx StateContext, name string, reduce func(acc, v V) V) *statebackend.Reducing[V] {
	return register(ctx, name, func(b *statebackend.Backend, full string) (*statebackend.Reducing[V], error) {
		return statebackend.NewReducing(b, full, codec[V]("value", name), reduce)
	})
}
