package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// node is the format-neutral tree both decoders produce, so that one walker
// checks fields, types and unknown keys, and reports lines, for JSON and
// YAML alike.
//
// Why a tree rather than decoding into a struct with tags: a struct decode
// loses what the error messages need. encoding/json gives no line numbers
// and keeps the last of two equal keys; both libraries convert scalars
// (a YAML 3.0 read into an int field fails, a quoted "5" into a string
// field passes) by rules that differ between the two formats. With the
// tree, a value's JSON or YAML type is recorded as written and the walker
// in decode.go applies one set of rules to both.
type node struct {
	kind  nodeKind
	typ   scalarType // scalars only
	value string     // scalars only
	line  int        // 1-based
	// keys and vals are parallel slices rather than a map so that file
	// order survives: the first error in the file is the one reported,
	// the same on every run, and a repeated key is still visible to
	// mapFields (a Go map would have kept one of the two silently).
	keys  []*node // maps: key scalars, in file order
	vals  []*node // maps: values, parallel to keys
	items []*node // sequences
}

// nodeKind is the shape of a node: what the walker compares with the
// shape a field wants before it looks at any value.
type nodeKind uint8

const (
	kindScalar nodeKind = iota + 1
	kindMap
	kindSeq
)

// scalarType is a scalar's type as the file wrote it (YAML's resolved
// tag, or the JSON token), not as a field would like it: "5" and 5 differ
// here, so that the walker can refuse the one it does not expect instead
// of converting it.
type scalarType uint8

const (
	typeString scalarType = iota + 1
	typeInt
	typeBool
	typeNull
	// typeOther is everything no field accepts: floats, timestamps,
	// binary. A float for a fen amount is refused, never truncated (money
	// is integer fen everywhere in the contract).
	typeOther // floats, timestamps...
)

// String names the kind for error messages ("a mapping").
func (k nodeKind) String() string {
	switch k {
	case kindMap:
		return "a mapping"
	case kindSeq:
		return "a list"
	}
	return "a scalar"
}

// parseYAML builds the tree of a YAML document. A file holding a second
// document ("---" and more) is refused: yaml.v3 would read the first and
// ignore the rest, so two policies concatenated by mistake would run as
// the first without a word.
func parseYAML(data []byte) (*node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "empty file"}
		}
		return nil, &Error{Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Line: extra.Line, Msg: "more than one YAML document"}
	}
	// The document node wraps the top-level value; unwrap it so that the
	// walker sees the mapping (and its line) directly.
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return fromYAML(doc.Content[0], 0)
	}
	return fromYAML(&doc, 0)
}

// fromYAML converts a yaml.Node. The deepest real policy field is three
// levels down (refunds.exchange.trigger); the depth bound of 16 only stops
// a hostile or broken file from recursing without end, long before the
// stack could matter.
func fromYAML(y *yaml.Node, depth int) (*node, error) {
	if depth > 16 {
		return nil, &Error{Line: y.Line, Msg: "nested too deeply"}
	}
	n := &node{line: y.Line}
	switch y.Kind {
	case yaml.ScalarNode:
		n.kind = kindScalar
		n.value = y.Value
		// ShortTag is the tag YAML resolved for the scalar (YAML 1.2
		// core schema in yaml.v3: only true/false are booleans, so
		// "no_reason" or "on" stay strings).
		switch y.ShortTag() {
		case "!!str":
			n.typ = typeString
		case "!!int":
			n.typ = typeInt
		case "!!bool":
			n.typ = typeBool
		case "!!null":
			n.typ = typeNull
		default:
			n.typ = typeOther
		}
	case yaml.MappingNode:
		n.kind = kindMap
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			// Merge keys (<<) and complex keys would let a value come
			// from elsewhere in the file, with another line and possibly
			// setting a field twice unseen; a policy has no use for them.
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, &Error{Line: k.Line, Msg: "mapping keys must be plain names (no merge keys or complex keys)"}
			}
			kn, err := fromYAML(k, depth+1)
			if err != nil {
				return nil, err
			}
			vn, err := fromYAML(v, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, kn)
			n.vals = append(n.vals, vn)
		}
	case yaml.SequenceNode:
		n.kind = kindSeq
		for _, c := range y.Content {
			cn, err := fromYAML(c, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, cn)
		}
	case yaml.AliasNode:
		// Aliases (*name) are refused for the same reason as merge keys,
		// and because expanding them is the classic way to make a small
		// file decode into a huge tree.
		return nil, &Error{Line: y.Line, Msg: "aliases are not supported in policy files"}
	default:
		return nil, &Error{Line: y.Line, Msg: "unexpected YAML node"}
	}
	return n, nil
}

// parseJSON builds the tree of a JSON document, with line numbers. It
// walks json.Decoder's tokens rather than unmarshalling, because only the
// token stream exposes offsets (hence lines) and keeps repeated keys.
// UseNumber keeps a number's text, so that 1e3 or 2.0 is seen as not an
// integer and an amount beyond 2^53 is not rounded through a float64.
func parseJSON(data []byte) (*node, error) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	// json.Decoder stops after the first value: without this check a file
	// with a second object after the first would be read as the first.
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Line: p.line(), Msg: "data after the top-level JSON value"}
	}
	return n, nil
}

// jsonParser is the token walk of parseJSON: the decoder, and the input
// it reads so that offsets can be turned into lines.
type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

// line returns the 1-based line of the decoder's input offset.
func (p *jsonParser) line() int {
	off := min(int(p.dec.InputOffset()), len(p.data))
	return bytes.Count(p.data[:off], []byte{'\n'}) + 1
}

// lineAt returns the line of the first byte at or after off that is not
// white space or a separator: where the next token starts. InputOffset
// before a Token call is the end of the previous token, which is often
// still on the previous line ("a": 1,\n "b": ...); without the skip every
// key after the first on a line of its own would be reported one line
// early.
func (p *jsonParser) lineAt(off int) int {
	for off < len(p.data) && (p.data[off] == ' ' || p.data[off] == '\t' || p.data[off] == '\r' || p.data[off] == '\n' || p.data[off] == ',' || p.data[off] == ':') {
		off++
	}
	return bytes.Count(p.data[:min(off, len(p.data))], []byte{'\n'}) + 1
}

// syntax turns a decoder error into an *Error with the line of the
// offending byte (SyntaxError.Offset) or, for a truncated file, of the end
// of input; the original error stays reachable through Unwrap.
func (p *jsonParser) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := min(int(se.Offset), len(p.data))
		return &Error{Line: bytes.Count(p.data[:off], []byte{'\n'}) + 1, Msg: "invalid JSON: " + se.Error(), Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Line: p.line(), Msg: "invalid JSON: unexpected end of input", Err: err}
	}
	return &Error{Line: p.line(), Msg: "invalid JSON: " + err.Error(), Err: err}
}

// value reads one JSON value, recursively, with the same depth bound as
// fromYAML. Each node's line is where its first token starts (lineAt), so
// an error about a value points at the value, not at the comma before it.
func (p *jsonParser) value(depth int) (*node, error) {
	if depth > 16 {
		return nil, &Error{Line: p.line(), Msg: "nested too deeply"}
	}
	start := int(p.dec.InputOffset())
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err)
	}
	n := &node{line: p.lineAt(start)}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.kind = kindMap
			for p.dec.More() {
				kstart := int(p.dec.InputOffset())
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntax(err)
				}
				ks, ok := kt.(string)
				if !ok {
					return nil, &Error{Line: p.lineAt(kstart), Msg: "invalid JSON: object key is not a string"}
				}
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, &node{kind: kindScalar, typ: typeString, value: ks, line: p.lineAt(kstart)})
				n.vals = append(n.vals, v)
			}
			if _, err := p.dec.Token(); err != nil { // '}'
				return nil, p.syntax(err)
			}
		case '[':
			n.kind = kindSeq
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, err := p.dec.Token(); err != nil { // ']'
				return nil, p.syntax(err)
			}
		default:
			return nil, &Error{Line: n.line, Msg: fmt.Sprintf("invalid JSON: unexpected %q", rune(t))}
		}
	case string:
		n.kind, n.typ, n.value = kindScalar, typeString, t
	case json.Number:
		n.kind, n.value = kindScalar, t.String()
		n.typ = typeInt
		// JSON has one number type; only the text tells 5 from 5.0 or
		// 5e0, and a fen amount or a star count must be written as an
		// integer.
		if strings.ContainsAny(n.value, ".eE") {
			n.typ = typeOther
		}
	case bool:
		n.kind, n.typ = kindScalar, typeBool
		n.value = "false"
		if t {
			n.value = "true"
		}
	case nil:
		n.kind, n.typ, n.value = kindScalar, typeNull, "null"
	}
	return n, nil
}
