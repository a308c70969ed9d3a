package rota

import (
	"context"
	"net/http"
	"time"
)

// HookVerify is how an inbound webhook checks that a request comes from whoever holds its
// secret.
type HookVerify string

const (
	// HookVerifyGitHub checks X-Hub-Signature-256 (HMAC-SHA256 of the body).
	HookVerifyGitHub HookVerify = "github"
	// HookVerifyGitLab compares X-Gitlab-Token with the secret.
	HookVerifyGitLab HookVerify = "gitlab"
	// HookVerifyHMACSHA256 checks Rota-Signature's v1 (HMAC-SHA256 of "<Rota-Timestamp>.<body>"),
	// as a Rota webhook signs its deliveries.
	HookVerifyHMACSHA256 HookVerify = "hmac-sha256"
	// HookVerifyStripe checks Stripe-Signature.
	HookVerifyStripe HookVerify = "stripe"
)

// NewHook is an inbound webhook to create.
type NewHook struct {
	// Name is unique in the tenant.
	Name string `json:"name"`
	// Queue is where its tasks go; the creator must hold tasks:enqueue on it.
	Queue string `json:"queue"`
	// Kind is its tasks' kind.
	Kind   string     `json:"kind"`
	Verify HookVerify `json:"verify"`
	// Secret is the shared secret as the provider knows it (GitHub's "Secret", GitLab's
	// "Secret token", Stripe's signing secret): 16 to 256 printable ASCII characters. Empty:
	// the server makes one.
	Secret      string `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// HookPatch changes the fields it names; the caller becomes the hook's owner.
type HookPatch struct {
	Queue       *string `json:"queue,omitempty"`
	Kind        *string `json:"kind,omitempty"`
	Description *string `json:"description,omitempty"`
	// Enabled false refuses its requests (403 hook_disabled) until it is true again.
	Enabled *bool `json:"enabled,omitempty"`
}

// HookRotation is a rotation of a hook's secret.
type HookRotation struct {
	// GraceMs is how long the old secret is still accepted beside the new one: 0 to
	// 259,200,000 (72 hours); rota.Ptr(int64(0)) refuses it at once; nil is the server's
	// default, a day.
	GraceMs *int64 `json:"grace_ms,omitempty"`
	// Secret is the new secret; empty: the server makes one.
	Secret string `json:"secret,omitempty"`
}

// Hook is an inbound webhook as the server shows it. A verified request to URL (POST, no
// bearer token) becomes a task of Queue and Kind with the payload {"body": ..., "headers":
// {...}}: the body as JSON (else as text) and the provider's event and delivery headers. A
// redelivery finds the task the first one made. Secret is set only when created or rotated.
type Hook struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// URL is where the provider sends.
	URL         string     `json:"url"`
	Queue       string     `json:"queue"`
	Kind        string     `json:"kind"`
	Verify      HookVerify `json:"verify"`
	Enabled     bool       `json:"enabled"`
	Description *string    `json:"description"`
	// Owner is the credential its requests enqueue as (its last writer).
	Owner *string `json:"owner"`
	// PreviousSecretUntil is until when the secret before the last rotation is still accepted.
	PreviousSecretUntil *time.Time `json:"previous_secret_until"`
	Secret              *string    `json:"secret"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

// HookOutcome is what became of a request to a hook (the API's Outcome).
type HookOutcome string

const (
	// HookReceived: the request was verified and a task enqueued.
	HookReceived HookOutcome = "received"
	// HookDuplicate: a redelivery (the same delivery id) found the task the first one made.
	HookDuplicate HookOutcome = "duplicate"
	// HookRejected: the request was refused (Reason says why).
	HookRejected HookOutcome = "rejected"
)

// HookRequest is one request a hook answered.
type HookRequest struct {
	At      time.Time   `json:"at"`
	Outcome HookOutcome `json:"outcome"`
	// Status is the HTTP status it was answered with.
	Status int `json:"status"`
	// Reason is why it was rejected ("<code>: <message>").
	Reason *string `json:"reason"`
	// Delivery is the provider's delivery id.
	Delivery *string `json:"delivery"`
	TaskID   *string `json:"task_id"`
	// Address is the address it came from.
	Address string `json:"address"`
}

// CreateHook creates an inbound webhook; the answer's Secret is shown this once. Providers
// send to its URL themselves (their signature is the credential); this client does not.
func (c *Client) CreateHook(ctx context.Context, h NewHook) (*Hook, error) {
	return c.hookCall(ctx, http.MethodPost, "/v1/hooks", h)
}

// Hooks lists the tenant's inbound webhooks.
func (c *Client) Hooks(ctx context.Context) ([]Hook, error) {
	var out struct {
		Hooks []Hook `json:"hooks"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/hooks", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Hooks, nil
}

// GetHook reads an inbound webhook.
func (c *Client) GetHook(ctx context.Context, id string) (*Hook, error) {
	return c.hookCall(ctx, http.MethodGet, "/v1/hooks/"+esc(id), nil)
}

// UpdateHook changes an inbound webhook; Enabled false refuses its requests until it is
// enabled again.
func (c *Client) UpdateHook(ctx context.Context, id string, patch HookPatch) (*Hook, error) {
	return c.hookCall(ctx, http.MethodPatch, "/v1/hooks/"+esc(id), patch)
}

// DeleteHook deletes an inbound webhook; requests to its URL are then 404s.
func (c *Client) DeleteHook(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/hooks/"+esc(id), nil, nil, nil, 0)
}

// RotateHookSecret gives a hook a new secret (r.Secret, else one the server makes), in the
// answer's Secret this once; the old one is still accepted for r.GraceMs, until
// PreviousSecretUntil.
func (c *Client) RotateHookSecret(ctx context.Context, id string, r HookRotation) (*Hook, error) {
	return c.hookCall(ctx, http.MethodPost, "/v1/hooks/"+esc(id)+"/rotate-secret", r)
}

// HookRequests are the last requests this server answered for the hook (at most 50), newest
// first; every server's are in the event log as hook.received and hook.rejected.
func (c *Client) HookRequests(ctx context.Context, id string) ([]HookRequest, error) {
	var out struct {
		Requests []HookRequest `json:"requests"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/hooks/"+esc(id)+"/requests", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

func (c *Client) hookCall(ctx context.Context, method, path string, body any) (*Hook, error) {
	var out Hook
	if err := c.call(ctx, method, path, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
