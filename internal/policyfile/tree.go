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
type node struct {
	kind  nodeKind
	typ   scalarType // scalars only
	value string     // scalars only
	line  int        // 1-based
	keys  []*node    // maps: key scalars, in file order
	vals  []*node    // maps: values, parallel to keys
	items []*node    // sequences
}

type nodeKind uint8

const (
	kindScalar nodeKind = iota + 1
	kindMap
	kindSeq
)

type scalarType uint8

const (
	typeString scalarType = iota + 1
	typeInt
	typeBool
	typeNull
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

// parseYAML builds the tree of a YAML document.
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
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return fromYAML(doc.Content[0], 0)
	}
	return fromYAML(&doc, 0)
}

func fromYAML(y *yaml.Node, depth int) (*node, error) {
	if depth > 16 {
		return nil, &Error{Line: y.Line, Msg: "nested too deeply"}
	}
	n := &node{line: y.Line}
	switch y.Kind {
	case yaml.ScalarNode:
		n.kind = kindScalar
		n.value = y.Value
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
		return nil, &Error{Line: y.Line, Msg: "aliases are not supported in policy files"}
	default:
		return nil, &Error{Line: y.Line, Msg: "unexpected YAML node"}
	}
	return n, nil
}

// parseJSON builds the tree of a JSON document, with line numbers.
func parseJSON(data []byte) (*node, error) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Line: p.line(), Msg: "data after the top-level JSON value"}
	}
	return n, nil
}

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
// white space or a separator: where the next token starts.
func (p *jsonParser) lineAt(off int) int {
	for off < len(p.data) && (p.data[off] == ' ' || p.data[off] == '\t' || p.data[off] == '\r' || p.data[off] == '\n' || p.data[off] == ',' || p.data[off] == ':') {
		off++
	}
	return bytes.Count(p.data[:min(off, len(p.data))], []byte{'\n'}) + 1
}

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
