package record

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record/recordtest"
)

// testResolver resolves the test policies, and gives requests stored
// without one the legacy policy (nil: none).
// It looks versions up in a map, as a partition does.
func testResolver(legacy *core.Policy) *Resolver {
	m := make(map[PolicyKey]*core.Policy)
	for _, p := range recordtest.Policies {
		m[mustPolKey(p)] = p
	}
	return &Resolver{
		Find: func(k PolicyKey) (*core.Policy, error) {
			if p := m[k]; p != nil {
				return p, nil
			}
			return nil, fmt.Errorf("%w %s", ErrUnknownPolicy, k)
		},
		Legacy: legacy,
	}
}

// decodeTest decodes rec with testResolver(nil).
func decodeTest(rec []byte) (*core.User, error) { return DecodeUser(rec, testResolver(nil)) }

// randomUser fills every field of a User (found by reflection, so fields
// added to core later are covered too) with random values, edge values
// included; a request's policy is one of the test policies or nil.
// Zero-length slices are nil, as the decoder returns them; unexported
// fields (core's string slab) stay zero.
func randomUser(r *rand.Rand) *core.User {
	u := &core.User{}
	fillRandom(r, reflect.ValueOf(u).Elem())
	return u
}

func fillRandom(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillRandom(r, v.Field(i))
			}
		}
	case reflect.Pointer:
		if v.Type() != reflect.TypeFor[*core.Policy]() {
			panic("fillRandom: unhandled pointer " + v.Type().String())
		}
		if i := r.IntN(len(recordtest.Policies) + 1); i < len(recordtest.Policies) {
			v.Set(reflect.ValueOf(recordtest.Policies[i]))
		}
	case reflect.String:
		b := make([]byte, r.IntN(14))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		edges := []int64{0, 1, -1, math.MinInt64, math.MaxInt64, recordtest.T0, recordtest.T0 - 86400e9, recordtest.T0 + 1e6, recordtest.T0 - 7}
		x := edges[r.IntN(len(edges))]
		if r.IntN(2) == 0 {
			x = int64(r.Uint64())
		}
		if v.OverflowInt(x) {
			x = int64(int8(x))
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		x := r.Uint64()
		if r.IntN(3) == 0 {
			x = uint64(r.IntN(4))
		}
		if v.OverflowUint(x) {
			x &= 1<<(8*v.Type().Size()) - 1
		}
		v.SetUint(x)
	case reflect.Slice:
		n := r.IntN(4)
		if n == 0 {
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillRandom(r, s.Index(i))
		}
		v.Set(s)
	default:
		panic("fillRandom: unhandled kind " + v.Kind().String())
	}
}

// mustPolKey is the binary version of a finished policy.
func mustPolKey(p *core.Policy) PolicyKey {
	k, ok := VersionKey(p.Version)
	if !ok {
		panic(p.Version)
	}
	return k
}
