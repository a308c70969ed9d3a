package rota_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

// tokenWorks lists the queues with a client of the token's own: nil when it is accepted.
func tokenWorks(ctx context.Context, t *testing.T, token string) error {
	t.Helper()
	_, err := newClient(t, rota.WithToken(token)).Queues(ctx)
	return err
}

// S19: key rotation: a rotated key keeps its id and gets a new token; with a grace of 0 the
// old token is refused at once, within a grace it is accepted beside the new one.
func TestS19KeyRotation(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	made, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"reader"}, Name: "s19-rotation"})
	if err != nil {
		t.Fatal(err)
	}
	if made.RotatedAt != nil || made.PreviousSecretUntil != nil {
		t.Fatalf("a new key %+v", made.Key)
	}
	if err := tokenWorks(ctx, t, made.Token); err != nil {
		t.Fatalf("the new key's token: %v", err)
	}

	// A grace of 0: the old token is refused at once.
	first, err := c.RotateKey(ctx, made.ID, rota.Ptr(int64(0)))
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != made.ID || len(first.Roles) != 1 || first.Roles[0] != "reader" {
		t.Fatalf("rotated %+v", first.Key)
	}
	if !strings.HasPrefix(first.Token, "rota_"+made.ID+"_") || first.Token == made.Token {
		t.Fatalf("the new token %q", first.Token)
	}
	if first.RotatedAt == nil || first.PreviousSecretUntil != nil {
		t.Fatalf("rotated with no grace %+v", first.Key)
	}
	if err := tokenWorks(ctx, t, first.Token); err != nil {
		t.Fatalf("the rotated token: %v", err)
	}
	err = tokenWorks(ctx, t, made.Token)
	var apiErr *rota.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != rota.CodeUnauthorized {
		t.Fatalf("the old token after a rotation with no grace: %v", err)
	}

	// An hour's grace: the token just replaced works beside the new one until then.
	second, err := c.RotateKey(ctx, made.ID, rota.Ptr(int64(3_600_000)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(second.Token, "rota_"+made.ID+"_") || second.Token == first.Token {
		t.Fatalf("the second token %q", second.Token)
	}
	if second.RotatedAt == nil || second.PreviousSecretUntil == nil || !second.PreviousSecretUntil.After(*second.RotatedAt) {
		t.Fatalf("rotated with an hour's grace %+v", second.Key)
	}
	if err := tokenWorks(ctx, t, second.Token); err != nil {
		t.Fatalf("the second token: %v", err)
	}
	if err := tokenWorks(ctx, t, first.Token); err != nil {
		t.Fatalf("the token replaced, within its grace: %v", err)
	}
	if err := tokenWorks(ctx, t, made.Token); rota.ErrorCode(err) != rota.CodeUnauthorized {
		t.Fatalf("the first token: %v", err)
	}
	shown, err := c.GetKey(ctx, made.ID)
	if err != nil || shown.PreviousSecretUntil == nil || !shown.PreviousSecretUntil.Equal(*second.PreviousSecretUntil) {
		t.Fatalf("the key read back %+v, %v", shown, err)
	}
	if _, err := c.RevokeKey(ctx, made.ID); err != nil {
		t.Fatal(err)
	}
}

// S19: a grace over 72 hours is a 422 naming grace_ms, and the key is left as it was.
func TestS19GraceOver72Hours(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	made, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"reader"}, Name: "s19-grace"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RotateKey(ctx, made.ID, rota.Ptr(int64(259_200_001)))
	var apiErr *rota.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || apiErr.Code != rota.CodeInvalidField || !strings.Contains(apiErr.Message, "grace_ms") {
		t.Fatalf("422: %v", err)
	}
	if key, err := c.GetKey(ctx, made.ID); err != nil || key.RotatedAt != nil {
		t.Fatalf("the key after a refused rotation %+v, %v", key, err)
	}
	if _, err := c.RevokeKey(ctx, made.ID); err != nil {
		t.Fatal(err)
	}
}
