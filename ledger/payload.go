package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// BytesKey is the one reserved payload key. In JSON a byte string is written
// as {"$bytes": "<base64>"}, so a payload map may not use it as a real key.
const BytesKey = "$bytes"

// CheckPayload checks that raw is a payload: a CBOR map with text keys whose
// values are text strings, byte strings, integers (within int64 or uint64),
// booleans, arrays or maps of the same; no floats, null, undefined, tags or
// simple values; nested at most MaxPayloadDepth deep; in core deterministic
// encoding.
func CheckPayload(raw []byte) error {
	v, err := decodePayload(raw)
	if err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return checkErr(ErrPayload, "%v", err)
	}
	if !bytes.Equal(again, raw) {
		return checkErr(ErrCanonical, "payload")
	}
	return nil
}

// DecodePayload returns the payload as Go values: map[string]any, []any,
// string, []byte, uint64, int64 and bool.
func DecodePayload(raw []byte) (map[string]any, error) {
	return decodePayload(raw)
}

func decodePayload(raw []byte) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, checkErr(ErrPayload, "missing")
	}
	if major := raw[0] >> 5; major != 5 {
		return nil, checkErr(ErrPayload, "payload must be a CBOR map, got major type %d", major)
	}
	var v any
	if err := decMode.Unmarshal(raw, &v); err != nil {
		return nil, checkErr(ErrPayload, "%v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, checkErr(ErrPayload, "payload map keys must be text strings")
	}
	if err := checkValue(m, 1, "payload"); err != nil {
		return nil, err
	}
	return m, nil
}

// checkValue checks one value. depth is the container level v would be at:
// the payload map is level 1, and only maps and arrays count.
func checkValue(v any, depth int, path string) error {
	switch v.(type) {
	case []any, map[string]any:
		if depth > MaxPayloadDepth {
			return checkErr(ErrPayload, "%s: maps and arrays nested deeper than %d levels", path, MaxPayloadDepth)
		}
	}
	switch x := v.(type) {
	case string, []byte, uint64, int64, bool:
		return nil
	case []any:
		for i, e := range x {
			if err := checkValue(e, depth+1, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for k, e := range x {
			if len(k) == 0 || len(k) > MaxPayloadKey {
				return checkErr(ErrPayload, "%s: keys must be 1 to %d bytes", path, MaxPayloadKey)
			}
			if k == BytesKey {
				return checkErr(ErrPayload, "%s: key %q is reserved", path, BytesKey)
			}
			if err := checkValue(e, depth+1, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case map[any]any:
		return checkErr(ErrPayload, "%s: map keys must be text strings", path)
	case nil:
		return checkErr(ErrPayload, "%s: null is not allowed", path)
	case float32, float64:
		return checkErr(ErrPayload, "%s: floating-point numbers are not allowed", path)
	default:
		return checkErr(ErrPayload, "%s: values of type %T are not allowed", path, v)
	}
}

// EncodePayload encodes Go values (as DecodePayload returns them, plus int,
// int32 and the like) into a canonical payload and checks it.
func EncodePayload(m map[string]any) (cbor.RawMessage, error) {
	if m == nil {
		m = map[string]any{}
	}
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, checkErr(ErrPayload, "%v", err)
	}
	if err := CheckPayload(b); err != nil {
		return nil, err
	}
	return b, nil
}

// PayloadFromJSON converts a JSON object into a canonical payload. Numbers
// must be integers; {"$bytes": "<base64>"} becomes a byte string; null and
// fractions are refused.
func PayloadFromJSON(js []byte) (cbor.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, checkErr(ErrPayload, "JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, checkErr(ErrPayload, "JSON: extra data after the object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, checkErr(ErrPayload, "JSON payload must be an object")
	}
	conv, err := fromJSON(m, "payload")
	if err != nil {
		return nil, err
	}
	cm, ok := conv.(map[string]any)
	if !ok {
		return nil, checkErr(ErrPayload, "the payload must be an object, not a byte string")
	}
	return EncodePayload(cm)
}

func fromJSON(v any, path string) (any, error) {
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case json.Number:
		s := x.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, nil
		}
		return nil, checkErr(ErrPayload, "%s: %s is not an integer in the 64-bit range (no fractions or exponents)", path, s)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromJSON(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		if b64, ok := x[BytesKey]; ok {
			s, isStr := b64.(string)
			if len(x) != 1 || !isStr {
				return nil, checkErr(ErrPayload, "%s: %q must be the only key and hold a base64 string", path, BytesKey)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, checkErr(ErrPayload, "%s: %s: %v", path, BytesKey, err)
			}
			return b, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := fromJSON(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case nil:
		return nil, checkErr(ErrPayload, "%s: null is not allowed", path)
	default:
		return nil, checkErr(ErrPayload, "%s: unsupported JSON value %T", path, v)
	}
}

// PayloadJSON renders a payload as JSON: byte strings as {"$bytes": base64},
// integers as JSON numbers (exact; readers in languages whose numbers are
// doubles should parse them as big integers), map keys in the payload's
// canonical order.
func PayloadJSON(raw []byte) (json.RawMessage, error) {
	m, err := decodePayload(raw)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// Canonical CBOR order: shorter keys first, then bytewise.
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			if err := writeJSON(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case []byte:
		buf.WriteString(`{"$bytes":"`)
		buf.WriteString(base64.StdEncoding.EncodeToString(x))
		buf.WriteString(`"}`)
	case string:
		writeJSONString(buf, x)
	case uint64:
		buf.WriteString(strconv.FormatUint(x, 10))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	default:
		return checkErr(ErrPayload, "cannot render %T", v)
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // cannot fail for a string
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
