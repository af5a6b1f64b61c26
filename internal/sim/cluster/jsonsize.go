package cluster

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
)

// jsonSize estimates the length of v's JSON encoding without encoding it
// (and without allocating, for the types query cells hold): strings count
// their bytes plus quotes (escapes are not counted), numbers their digits,
// lists and objects their elements plus separators. It is what the query
// limits compare with MaxBytes.
func jsonSize(v any) int64 {
	switch x := v.(type) {
	case nil:
		return 4
	case string:
		return int64(len(x)) + 2
	case bool:
		if x {
			return 4
		}
		return 5
	case int:
		return intSize(int64(x))
	case int64:
		return intSize(x)
	case int32:
		return intSize(int64(x))
	case float64:
		return floatSize(x)
	case json.Number:
		return int64(len(x))
	case []any:
		n := int64(2)
		for _, e := range x {
			n += jsonSize(e) + 1
		}
		return n
	case []string:
		n := int64(2)
		for _, e := range x {
			n += int64(len(e)) + 3
		}
		return n
	case []int64:
		n := int64(2)
		for _, e := range x {
			n += intSize(e) + 1
		}
		return n
	case map[string]any:
		n := int64(2)
		for k, e := range x {
			n += int64(len(k)) + 4 + jsonSize(e)
		}
		return n
	case map[string]string:
		n := int64(2)
		for k, e := range x {
			n += int64(len(k)) + int64(len(e)) + 6
		}
		return n
	case Cell:
		return 4 + jsonSize(x.Value)
	}
	return reflectSize(reflect.ValueOf(v))
}

func intSize(i int64) int64 {
	n := int64(1)
	if i < 0 {
		n++
		if i == math.MinInt64 {
			return 20
		}
		i = -i
	}
	for i >= 10 {
		i /= 10
		n++
	}
	return n
}

func floatSize(f float64) int64 {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return intSize(int64(f)) + 2
	}
	return 24
}

// reflectSize handles the types without a case in jsonSize; a type with
// its own JSON encoding is encoded.
func reflectSize(v reflect.Value) int64 {
	if !v.IsValid() {
		return 4
	}
	if v.Type().Implements(jsonMarshaler) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return 4
		}
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return 4
		}
		return int64(len(b))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 4
		}
		return reflectSize(v.Elem())
	case reflect.String:
		return int64(v.Len()) + 2
	case reflect.Bool:
		return 5
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intSize(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(len(strconv.FormatUint(v.Uint(), 10)))
	case reflect.Float32, reflect.Float64:
		return floatSize(v.Float())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return 4
		}
		n := int64(2)
		for i := 0; i < v.Len(); i++ {
			n += reflectSize(v.Index(i)) + 1
		}
		return n
	case reflect.Map:
		n := int64(2)
		it := v.MapRange()
		for it.Next() {
			n += reflectSize(it.Key()) + 2 + reflectSize(it.Value())
		}
		return n
	case reflect.Struct:
		n := int64(2)
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if t.Field(i).IsExported() {
				n += int64(len(t.Field(i).Name)) + 4 + reflectSize(v.Field(i))
			}
		}
		return n
	}
	return 4
}

var jsonMarshaler = reflect.TypeFor[json.Marshaler]()
