package rota_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

type openAPISchema struct {
	Ref        string                     `json:"$ref"`
	Properties map[string]json.RawMessage `json:"properties"`
	AllOf      []openAPISchema            `json:"allOf"`
	OneOf      []openAPISchema            `json:"oneOf"`
	AnyOf      []openAPISchema            `json:"anyOf"`
}

// own are the schema's own properties and those of the inline schemas it is made of: what the
// coverage check asks the library to know under this schema's name.
func (s openAPISchema) own() []string {
	var names []string
	for name := range s.Properties {
		names = append(names, name)
	}
	for _, parts := range [][]openAPISchema{s.AllOf, s.OneOf, s.AnyOf} {
		for _, part := range parts {
			if part.Ref == "" {
				names = append(names, part.own()...)
			}
		}
	}
	return names
}

// all are the properties a value of the schema may have, those of the schemas it refers to in
// allOf, oneOf and anyOf included.
func (s openAPISchema) all(schemas map[string]openAPISchema) map[string]bool {
	names := map[string]bool{}
	for name := range s.Properties {
		names[name] = true
	}
	for _, parts := range [][]openAPISchema{s.AllOf, s.OneOf, s.AnyOf} {
		for _, part := range parts {
			if part.Ref != "" {
				part = schemas[strings.TrimPrefix(part.Ref, "#/components/schemas/")]
			}
			for name := range part.all(schemas) {
				names[name] = true
			}
		}
	}
	return names
}

// TestS15OpenAPICoverage fails when the live server's OpenAPI document has an operation or a
// component schema's property that the library's known lists lack.
func TestS15OpenAPICoverage(t *testing.T) {
	raw, err := newClient(t).OpenAPI(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]openAPISchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	known := map[rota.Operation]bool{}
	for _, op := range rota.KnownOperations() {
		known[op] = true
	}
	var missing []string
	served := 0
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "patch", "delete", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			served++
			op := rota.Operation{Method: strings.ToUpper(method), Path: path}
			if !known[op] {
				missing = append(missing, op.Method+" "+op.Path)
			}
			delete(known, op)
		}
	}
	for op := range known {
		t.Errorf("the library lists %s %s, which the server does not serve", op.Method, op.Path)
	}

	fields := rota.KnownFields()
	for name, schema := range doc.Components.Schemas {
		have := map[string]bool{}
		for _, f := range fields[name] {
			have[f] = true
		}
		for _, prop := range schema.own() {
			if !have[prop] {
				missing = append(missing, name+"."+prop)
			}
		}
	}
	// And the other way: a field the library sends or reads under a name the schema does not
	// have (a typo in a JSON tag, a field the server dropped) is an error too.
	for name, known := range fields {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("the library models schema %s, which the document lacks", name)
			continue
		}
		props := schema.all(doc.Components.Schemas)
		for _, f := range known {
			if !props[f] {
				t.Errorf("the library knows %s.%s, which the document's schema lacks", name, f)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the server's OpenAPI document has what the library does not know:\n  %s", strings.Join(missing, "\n  "))
	}
	if served < 60 {
		t.Fatalf("only %d operations in the document: is it the server's?", served)
	}
}
