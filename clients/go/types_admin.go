package rota

import "time"

// ClientLimits bound a key's or a tenant's requests; nil is the server's default.
type ClientLimits struct {
	RequestsPerMinute *int `json:"requests_per_minute,omitempty"`
	MaxInFlight       *int `json:"max_in_flight,omitempty"`
}

// NewTenant is a tenant to create.
type NewTenant struct {
	Name             string        `json:"name"`
	Limits           *ClientLimits `json:"limits,omitempty"`
	EventRetentionMs *int64        `json:"event_retention_ms,omitempty"`
}

// TenantPatch changes the fields it names; Clear() retention goes back to the server's.
type TenantPatch struct {
	Limits           *ClientLimits    `json:"limits,omitempty"`
	EventRetentionMs *Nullable[int64] `json:"event_retention_ms,omitempty"`
}

// Tenant is a tenant as the server shows it.
type Tenant struct {
	Name             string       `json:"name"`
	Limits           ClientLimits `json:"limits"`
	EventRetentionMs *int64       `json:"event_retention_ms"`
	CreatedAt        time.Time    `json:"created_at"`
}

// NewKey is an API key to create.
type NewKey struct {
	Roles []string `json:"roles"`
	Name  string   `json:"name,omitempty"`
	// Queues are patterns outside which the key can do nothing; empty is all.
	Queues     []string      `json:"queues,omitempty"`
	ExpiresAt  *time.Time    `json:"expires_at,omitempty"`
	ExpiresInS int64         `json:"expires_in_s,omitempty"`
	Limits     *ClientLimits `json:"limits,omitempty"`
}

// Key is an API key as the server shows it (never its token).
type Key struct {
	ID         string       `json:"id"`
	Tenant     string       `json:"tenant"`
	Name       *string      `json:"name"`
	Roles      []string     `json:"roles"`
	Queues     []string     `json:"queues"`
	Limits     ClientLimits `json:"limits"`
	CreatedAt  time.Time    `json:"created_at"`
	ExpiresAt  *time.Time   `json:"expires_at"`
	LastUsedAt *time.Time   `json:"last_used_at"`
	RevokedAt  *time.Time   `json:"revoked_at"`
	// RotatedAt is when its secret was last rotated (RotateKey).
	RotatedAt *time.Time `json:"rotated_at"`
	// PreviousSecretUntil is until when the secret before the last rotation is still
	// accepted; nil when none is.
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
}

// CreatedKey is a new key and, this once, its token.
type CreatedKey struct {
	Key
	Token string `json:"token"`
}

// Effect is a rule's effect: allow or deny (deny wins).
type Effect string

// The rule effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// Rule allows or denies an action (tasks:claim, tasks:*) on resources (queues/emails-*).
type Rule struct {
	Resource string `json:"resource"`
	Action   string `json:"action"`
	Effect   Effect `json:"effect"`
}

// Role is a named set of rules.
type Role struct {
	Name      string     `json:"name"`
	Builtin   bool       `json:"builtin"`
	Rules     []Rule     `json:"rules"`
	UpdatedAt *time.Time `json:"updated_at"`
}

type roleBody struct {
	Rules []Rule `json:"rules"`
}

// WhoAmI is what the server knows of the caller's credential.
type WhoAmI struct {
	Principal    string       `json:"principal"`
	Tenant       string       `json:"tenant"`
	ActingTenant string       `json:"acting_tenant"`
	Roles        []string     `json:"roles"`
	Queues       []string     `json:"queues"`
	Kinds        []string     `json:"kinds"`
	Maintenance  *Maintenance `json:"maintenance"`
}

// Maintenance is the maintenance banner, and whether writes are refused.
type Maintenance struct {
	Message  string     `json:"message"`
	Refusing bool       `json:"refusing"`
	Since    time.Time  `json:"since"`
	Until    *time.Time `json:"until"`
	By       string     `json:"by"`
}

// MaintenanceRequest turns maintenance on ("on": writes refused) or announces it ("announce").
type MaintenanceRequest struct {
	Mode    string     `json:"mode"`
	Message string     `json:"message"`
	Until   *time.Time `json:"until,omitempty"`
}

type maintenanceState struct {
	Maintenance *Maintenance `json:"maintenance"`
}
