package rota

import "encoding/json"

// Nullable is a patch field that can also clear what it names: use it through a pointer, nil
// leaving the field as it is, Set(v) changing it and Clear() sending null (which lifts a
// limit, say).
type Nullable[T any] struct {
	Value T
	Null  bool
}

// Set is a patch field that changes the setting to v.
func Set[T any](v T) *Nullable[T] { return &Nullable[T]{Value: v} }

// Clear is a patch field that sends null: the setting goes back to none or its default.
func Clear[T any]() *Nullable[T] { return &Nullable[T]{Null: true} }

// MarshalJSON writes null or the value.
func (n Nullable[T]) MarshalJSON() ([]byte, error) {
	if n.Null {
		return []byte("null"), nil
	}
	return json.Marshal(n.Value)
}

// UnmarshalJSON reads null or the value.
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Nullable[T]{Null: true}
		return nil
	}
	n.Null = false
	return json.Unmarshal(b, &n.Value)
}

// Ptr returns a pointer to v, for the optional fields of requests.
func Ptr[T any](v T) *T { return &v }
