package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// The lexical rules of docs/formats.md section 0. Go's encoding/json matches struct
// fields case-insensitively, keeps the last of two duplicate keys, ignores unknown members
// and takes 1.0 for an int field, so nothing here decodes into structs: a token pass checks
// the rules, then every object is read as a map (exact keys) and its member set compared.

const (
	maxDepth = 32
	maxInt   = 1<<53 - 1
)

var intLiteral = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// checkLexical applies the section-0 rules to a whole document: printable ASCII (plus
// tab, CR, LF), no backslash, no duplicate key in any object, integers only, bounded
// depth, and nothing after the top-level value.
func checkLexical(data []byte) error {
	for i, b := range data {
		if (b < 0x20 || b > 0x7e) && b != '\t' && b != '\n' && b != '\r' {
			return fmt.Errorf("byte %d is not printable ASCII", i)
		}
	}
	if bytes.IndexByte(data, '\\') >= 0 {
		return errors.New("an envelope contains no backslash: escape sequences are refused")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // object: the next string token is a key
	}
	var stack []*frame
	afterValue := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expect = true
		}
	}
	seenTop := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not JSON: %v", err)
		}
		if len(stack) == 0 && seenTop {
			return errors.New("data after the JSON value")
		}
		top := (*frame)(nil)
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.object && top.expect {
			key, ok := tok.(string)
			if !ok {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					afterValue()
					continue
				}
				return errors.New("expected a member name")
			}
			if top.keys[key] {
				return fmt.Errorf("duplicate key %q in an object (each key may appear once)", key)
			}
			top.keys[key] = true
			top.expect = false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxDepth {
					return fmt.Errorf("nesting deeper than %d levels", maxDepth)
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, expect: t == '{'})
				seenTop = true
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case json.Number:
			s := string(t)
			if !intLiteral.MatchString(s) {
				return fmt.Errorf("number %q is not a non-negative integer (no sign, fraction or exponent, e.g. 1 not 1.0)", s)
			}
			if len(s) > 16 {
				return fmt.Errorf("number %s is larger than 2^53 - 1", s)
			}
			var v uint64
			fmt.Sscan(s, &v)
			if v > maxInt {
				return fmt.Errorf("number %s is larger than 2^53 - 1", s)
			}
		}
		seenTop = true
		afterValue()
	}
	if !seenTop {
		return errors.New("empty input")
	}
	return nil
}

// members decodes one JSON object into its raw members and checks that its keys are
// exactly the required ones plus any of the optional ones (compared byte for byte).
func members(raw json.RawMessage, what string, required []string, optional ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("%s must be a JSON object", what)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	allowed := map[string]bool{}
	for _, k := range required {
		allowed[k] = true
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s has no member %q", what, k)
		}
	}
	for _, k := range optional {
		allowed[k] = true
	}
	for k := range m {
		if !allowed[k] {
			return nil, fmt.Errorf("%s has an unknown member %q", what, k)
		}
	}
	return m, nil
}

func str(m map[string]json.RawMessage, key, what string) (string, error) {
	raw := m[key]
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%s.%s must be a string", what, key)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s.%s: %v", what, key, err)
	}
	return s, nil
}

func integer(m map[string]json.RawMessage, key, what string) (int64, error) {
	raw := string(m[key])
	if !intLiteral.MatchString(raw) || len(raw) > 16 {
		return 0, fmt.Errorf("%s.%s must be a non-negative integer", what, key)
	}
	var v int64
	fmt.Sscan(raw, &v)
	return v, nil
}
