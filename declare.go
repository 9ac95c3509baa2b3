package weir

import (
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/statebackend"
)

// StateDecl declares a keyed state that an operator's function uses, so
// that `JOB verify --from PATH` can check a checkpoint's state against the
// job's codecs before the job is deployed (without it, a mismatch shows only
// when the function first asks for the state). Build one with DeclareValue,
// DeclareMap, DeclareList or DeclareReducing and attach them with States.
type StateDecl = engine.StateDecl

// DeclareValue declares value state name of type V (weir.Value).
func DeclareValue[V any](name string) StateDecl {
	return StateDecl{Name: name, Kind: statebackend.KindValue.String(), ValueCodec: fingerprint[V]()}
}

// DeclareMap declares map state name from K to V (weir.MapOf).
func DeclareMap[K, V any](name string) StateDecl {
	return StateDecl{Name: name, Kind: statebackend.KindMap.String(), KeyCodec: fingerprint[K](), ValueCodec: fingerprint[V]()}
}

// DeclareList declares list state name of elements V (weir.List).
func DeclareList[V any](name string) StateDecl {
	return StateDecl{Name: name, Kind: statebackend.KindList.String(), ValueCodec: fingerprint[V]()}
}

// DeclareReducing declares reducing state name of type V (weir.Reducing).
func DeclareReducing[V any](name string) StateDecl {
	return StateDecl{Name: name, Kind: statebackend.KindReducing.String(), ValueCodec: fingerprint[V]()}
}

// States declares every keyed state the operator's function uses. verify
// then also reports stored states the function no longer uses.
func States(decls ...StateDecl) OperatorOption {
	return func(n *engine.Node) {
		n.States = append(n.States, decls...)
		n.StatesDeclared = true
	}
}

func fingerprint[V any]() string {
	c, err := statebackend.CodecFor[V]()
	if err != nil {
		return "unsupported: " + err.Error()
	}
	return c.Fingerprint()
}
