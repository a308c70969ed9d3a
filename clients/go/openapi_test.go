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

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]openAPISchema `json:"schemas"`
	} `json:"components"`
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

// coverage compares a document with what the library knows: unknown are the document's
// operations and schema properties the library lacks; stale what the library lists that the
// document does not have (an operation gone, a mistyped JSON tag).
func coverage(doc openAPIDoc, operations []rota.Operation, fields map[string][]string) (unknown, stale []string) {
	known := map[rota.Operation]bool{}
	for _, op := range operations {
		known[op] = true
	}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "patch", "delete", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			op := rota.Operation{Method: strings.ToUpper(method), Path: path}
			if !known[op] {
				unknown = append(unknown, op.Method+" "+op.Path)
			}
			delete(known, op)
		}
	}
	for op := range known {
		stale = append(stale, op.Method+" "+op.Path)
	}
	for name, schema := range doc.Components.Schemas {
		have := map[string]bool{}
		for _, f := range fields[name] {
			have[f] = true
		}
		for _, prop := range schema.own() {
			if !have[prop] {
				unknown = append(unknown, name+"."+prop)
			}
		}
	}
	for name, known := range fields {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			stale = append(stale, name)
			continue
		}
		props := schema.all(doc.Components.Schemas)
		for _, f := range known {
			if !props[f] {
				stale = append(stale, name+"."+f)
			}
		}
	}
	sort.Strings(unknown)
	sort.Strings(stale)
	return unknown, stale
}

func liveDoc(t *testing.T) openAPIDoc {
	t.Helper()
	raw, err := newClient(t).OpenAPI(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) < 40 || len(doc.Components.Schemas) < 50 {
		t.Fatalf("%d paths and %d schemas: is this the server's document?", len(doc.Paths), len(doc.Components.Schemas))
	}
	return doc
}

// TestS15OpenAPICoverage fails when the live server's OpenAPI document has an operation or a
// component schema's property that the library's known lists lack, or the other way round.
func TestS15OpenAPICoverage(t *testing.T) {
	unknown, stale := coverage(liveDoc(t), rota.KnownOperations(), rota.KnownFields())
	if len(unknown) > 0 {
		t.Errorf("the server's OpenAPI document has what the library does not know:\n  %s", strings.Join(unknown, "\n  "))
	}
	if len(stale) > 0 {
		t.Errorf("the library knows what the server's OpenAPI document lacks:\n  %s", strings.Join(stale, "\n  "))
	}
}

// The check notices an operation and a field added to the document, and one taken away.
func TestS15CoverageNoticesWhatItDoesNotKnow(t *testing.T) {
	doc := liveDoc(t)
	doc.Paths["/v1/frobnicate"] = map[string]json.RawMessage{"post": nil, "parameters": nil}
	task := doc.Components.Schemas["Task"]
	task.Properties["frobs"] = nil
	delete(task.Properties, "tags")
	unknown, stale := coverage(doc, rota.KnownOperations(), rota.KnownFields())
	if strings.Join(unknown, ",") != "POST /v1/frobnicate,Task.frobs" {
		t.Errorf("unknown: %q", unknown)
	}
	// EnqueuedTask and ClaimedTask are a Task and more (allOf), so they lose tags too.
	if strings.Join(stale, ",") != "ClaimedTask.tags,EnqueuedTask.tags,Task.tags" {
		t.Errorf("stale: %q", stale)
	}
}
