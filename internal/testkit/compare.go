package testkit

import "reflect"

// EqualNilEmpty reports whether a and b are deeply equal, as
// reflect.DeepEqual says, except that a nil and an empty slice or map
// count as equal at any depth below exported fields. Codecs do not keep
// that difference (a decoder returns nil for a list an encoder wrote
// empty, YAML's [] may come back either way), and the module's types do
// not give it a meaning, so a round-trip check that asked for it would
// fail on nothing.
//
// Unexported fields are compared as they are (reflect cannot rewrite
// them). Values must not hold pointer cycles: the comparison copies
// through pointers and would not end.
func EqualNilEmpty(a, b any) bool {
	if a == nil || b == nil {
		return a == b // reflect.ValueOf(nil) has no value to copy
	}
	return reflect.DeepEqual(nilEmpty(reflect.ValueOf(a)).Interface(), nilEmpty(reflect.ValueOf(b)).Interface())
}

// nilEmpty returns a copy of v in which every empty slice or map
// reachable through exported fields, elements and pointers is nil. It
// copies rather than rewrites in place so that the caller's values (a
// shared preset, a fixture) are never changed by a comparison.
func nilEmpty(v reflect.Value) reflect.Value {
	if !v.IsValid() {
		return v
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
	}
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(nilEmpty(v.Elem()))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out.Set(nilEmpty(v.Elem()))
	case reflect.Struct:
		out.Set(v) // unexported fields as they are
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(nilEmpty(v.Field(i)))
			}
		}
	case reflect.Slice:
		out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
		for i := range v.Len() {
			out.Index(i).Set(nilEmpty(v.Index(i)))
		}
	case reflect.Array:
		for i := range v.Len() {
			out.Index(i).Set(nilEmpty(v.Index(i)))
		}
	case reflect.Map:
		out.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), nilEmpty(it.Value()))
		}
	default:
		return v
	}
	return out
}
