// Package jsonvalue encodes values as JSON the way encoding/json does, except
// for floats that JSON has no number for: NaN and the infinities, which
// encoding/json refuses, are written as the strings "NaN", "+Inf" and
// "-Inf" (as strconv formats them, and as the Prometheus text format and
// sluice's decimal codecs write them). The views' handlers and the web
// monitor answer with it, so that one window whose mean is NaN does not
// turn a whole answer into an error.
//
// A value without such floats is encoded by encoding/json alone, byte for
// byte. Only when encoding/json refuses a float does Marshal walk the value
// itself, with encoding/json's rules for struct fields (names and options
// from the json tag, embedded structs, omitempty, omitzero, string) and
// map keys; every part of the value that holds no such float is still
// encoded by encoding/json. A float inside a type's own MarshalJSON cannot
// be reached: that method's error is returned.
package jsonvalue

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Marshal returns the JSON encoding of v, as json.Marshal does, with NaN,
// +Inf and -Inf floats written as the strings "NaN", "+Inf" and "-Inf".
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err == nil || !nonFinite(err) {
		return b, err
	}
	var buf bytes.Buffer
	if err := encode(&buf, reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// nonFinite reports whether err is encoding/json refusing a NaN or an
// infinite float.
func nonFinite(err error) bool {
	var uv *json.UnsupportedValueError
	if !errors.As(err, &uv) || !uv.Value.IsValid() {
		return false
	}
	switch uv.Value.Kind() {
	case reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// encode writes v to b. It hands to encoding/json every value that
// encodes itself and every value encoding/json accepts, and takes apart
// only the values that hold a float encoding/json refuses.
func encode(b *bytes.Buffer, v reflect.Value) error {
	if !v.IsValid() {
		b.WriteString("null")
		return nil
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(v.Type()).Implements(marshalerType) {
		// json.Marshal calls a pointer method of an addressable value.
		v = v.Addr()
	}
	selfEncoding := v.Type().Implements(marshalerType) || v.Type().Implements(textMarshalerType)
	if v.CanInterface() {
		out, err := json.Marshal(v.Interface())
		if err == nil {
			b.Write(out)
			return nil
		}
		if selfEncoding || !nonFinite(err) {
			return err
		}
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return encodeFloat(b, v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encode(b, v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encodeList(b, v)
	case reflect.Array:
		return encodeList(b, v)
	case reflect.Map:
		return encodeMap(b, v)
	case reflect.Struct:
		return encodeStruct(b, v)
	}
	// A value reached through an unexported embedded struct, which cannot
	// be handed to encoding/json as it is.
	return encodePlain(b, v)
}

func encodeFloat(b *bytes.Buffer, v reflect.Value) error {
	f := v.Float()
	switch {
	case math.IsNaN(f):
		b.WriteString(`"NaN"`)
	case math.IsInf(f, 1):
		b.WriteString(`"+Inf"`)
	case math.IsInf(f, -1):
		b.WriteString(`"-Inf"`)
	default:
		var out []byte
		var err error
		if v.Kind() == reflect.Float32 {
			out, err = json.Marshal(float32(f))
		} else {
			out, err = json.Marshal(f)
		}
		if err != nil {
			return err
		}
		b.Write(out)
	}
	return nil
}

// encodePlain writes a bool, integer or string by its kind.
func encodePlain(b *bytes.Buffer, v reflect.Value) error {
	var x any
	switch v.Kind() {
	case reflect.Bool:
		x = v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x = v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x = v.Uint()
	case reflect.String:
		x = v.String()
	default:
		return &json.UnsupportedTypeError{Type: v.Type()}
	}
	out, err := json.Marshal(x)
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

func encodeList(b *bytes.Buffer, v reflect.Value) error {
	b.WriteByte('[')
	for i := range v.Len() {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encode(b, v.Index(i)); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

func encodeMap(b *bytes.Buffer, v reflect.Value) error {
	if v.IsNil() {
		b.WriteString("null")
		return nil
	}
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k, err := mapKey(it.Key())
		if err != nil {
			return err
		}
		entries = append(entries, entry{k, it.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	b.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(e.key)
		b.Write(name)
		b.WriteByte(':')
		if err := encode(b, e.val); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// mapKey returns the name of a map key, as encoding/json makes it.
func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if k.Type().Implements(textMarshalerType) && k.CanInterface() {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		t, err := k.Interface().(encoding.TextMarshaler).MarshalText()
		return string(t), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", &json.UnsupportedTypeError{Type: k.Type()}
}

// field is a struct field as encoding/json encodes it.
type field struct {
	name      string
	index     []int
	tagged    bool
	omitEmpty bool
	omitZero  bool
	quoted    bool
}

func encodeStruct(b *bytes.Buffer, v reflect.Value) error {
	b.WriteByte('{')
	first := true
	for _, f := range fields(v.Type()) {
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			continue // behind a nil embedded pointer
		}
		if (f.omitEmpty && isEmpty(fv)) || (f.omitZero && isZero(fv)) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(f.name)
		b.Write(name)
		b.WriteByte(':')
		if err := encodeField(b, fv, f.quoted); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// encodeField writes a field's value, as a string of its JSON when the tag
// says ",string".
func encodeField(b *bytes.Buffer, v reflect.Value, quoted bool) error {
	if !quoted {
		return encode(b, v)
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return encodeFloat(b, v)
		}
	}
	var inner bytes.Buffer
	if err := encode(&inner, v); err != nil {
		return err
	}
	out, err := json.Marshal(inner.String())
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

// fields returns the fields encoding/json encodes of struct type t, in its
// order, with its rules: exported fields, the fields of untagged embedded
// structs promoted, and of several fields of one name the shallowest,
// or the one tagged among the shallowest, or none.
func fields(t reflect.Type) []field {
	var all []field
	depthOf := map[string]int{}
	var walk func(t reflect.Type, index []int, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, index []int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen = mapsWith(seen, t)
		for i := range t.NumField() {
			sf := t.Field(i)
			ft := sf.Type
			if sf.Anonymous {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !sf.IsExported() && ft.Kind() != reflect.Struct {
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(index), i)
			if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
				walk(ft, idx, seen)
				continue
			}
			f := field{name: name, index: idx, tagged: name != ""}
			if f.name == "" {
				f.name = sf.Name
			}
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "omitempty":
					f.omitEmpty = true
				case "omitzero":
					f.omitZero = true
				case "string":
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						f.quoted = true
					}
				}
			}
			all = append(all, f)
			if d, ok := depthOf[f.name]; !ok || len(idx) < d {
				depthOf[f.name] = len(idx)
			}
		}
	}
	walk(t, nil, map[reflect.Type]bool{})

	byName := map[string][]field{}
	for _, f := range all {
		if len(f.index) == depthOf[f.name] {
			byName[f.name] = append(byName[f.name], f)
		}
	}
	var out []field
	for _, f := range all {
		same := byName[f.name]
		if len(f.index) != depthOf[f.name] {
			continue
		}
		if len(same) > 1 {
			var tagged []field
			for _, s := range same {
				if s.tagged {
					tagged = append(tagged, s)
				}
			}
			if len(tagged) != 1 || !slices.Equal(tagged[0].index, f.index) {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

func mapsWith(m map[reflect.Type]bool, t reflect.Type) map[reflect.Type]bool {
	c := make(map[reflect.Type]bool, len(m)+1)
	for k := range m {
		c[k] = true
	}
	c[t] = true
	return c
}

// isEmpty is encoding/json's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZero is encoding/json's test for omitzero: the value's IsZero method
// if it has one, else the zero value of its type.
func isZero(v reflect.Value) bool {
	if v.CanInterface() {
		if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
			if v.Kind() == reflect.Pointer && v.IsNil() {
				return true
			}
			return z.IsZero()
		}
	}
	return v.IsZero()
}
