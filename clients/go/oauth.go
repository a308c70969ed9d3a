package rota

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// AccessToken is POST /oauth/token's answer: AccessToken is sent as Authorization: Bearer and
// acts as its API key narrowed to Scope, until it expires or the key is revoked.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	// TokenType is "Bearer".
	TokenType string `json:"token_type"`
	// ExpiresIn is how many seconds it lasts from when it was issued.
	ExpiresIn int64 `json:"expires_in"`
	// Scope is what it may do (space-separated): the scope asked for, or the actions the
	// key's roles allow.
	Scope string `json:"scope"`
}

// OAuth errors of the token endpoint (RFC 6749), as Error.Code.
const (
	CodeInvalidClient          = "invalid_client"
	CodeInvalidScope           = "invalid_scope"
	CodeInvalidRequest         = "invalid_request"
	CodeUnsupportedGrantType   = "unsupported_grant_type"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// FetchToken exchanges an API key's id and whole token (rota_<id>_<secret>) for an access token
// (POST /oauth/token, the OAuth 2.0 client credentials grant), narrowed to the scope items
// given: actions (tasks:claim, tasks:*) and queue patterns (queues/emails-*). It is sent without
// the client's own credential. A refusal is an *Error whose Code is OAuth's error: 401
// CodeInvalidClient (a wrong id or secret, a revoked or expired key), 400 CodeInvalidScope,
// CodeInvalidRequest or CodeUnsupportedGrantType, 429 after too many failures.
func (c *Client) FetchToken(ctx context.Context, clientID, clientSecret string, scope ...string) (*AccessToken, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {clientSecret},
	}
	if len(scope) > 0 {
		form.Set("scope", strings.Join(scope, " "))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + "/oauth/token"
	id := requestID(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("rota: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rota-go/"+Version)
	req.Header.Set("X-Request-Id", id)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rota: POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("rota: reading the answer to POST %s: %w", u, err)
	}
	if resp.StatusCode >= 300 {
		return nil, answerError(resp.StatusCode, raw, id)
	}
	var out AccessToken
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("rota: unexpected answer to POST %s: %w", u, err)
	}
	return &out, nil
}

// WithClientCredentials makes the client authenticate with OAuth 2.0 client credentials instead
// of a token: an API key's id and whole token, exchanged for access tokens narrowed to the scope
// items given (none: what the key's roles allow). The client fetches one on first use, a new
// one shortly before it expires (a minute before, or half its life for a short one), and when a
// request is answered 401 one more before it sends the request once again. ROTA_TOKEN and
// WithToken are then ignored.
func WithClientCredentials(clientID, clientSecret string, scope ...string) Option {
	return func(c *Client) {
		scope = append([]string(nil), scope...)
		c.tokens = &tokenSource{
			fetch: func(ctx context.Context) (*AccessToken, error) {
				return c.FetchToken(ctx, clientID, clientSecret, scope...)
			},
			refreshing: make(chan struct{}, 1),
		}
	}
}

// refreshMargin is how long before its end a token is replaced (at most half its life before).
const refreshMargin = time.Minute

// tokenSource is the access token of a client built WithClientCredentials. One fetch runs at a
// time: the requests that need a token meanwhile wait for it rather than ask for their own.
type tokenSource struct {
	fetch      func(context.Context) (*AccessToken, error)
	refreshing chan struct{} // held while a token is fetched

	mu        sync.Mutex
	token     string
	refreshAt time.Time
}

func (s *tokenSource) current() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.token != "" && time.Now().Before(s.refreshAt)
}

// get is the token to send, fetched first when there is none or it is about to end.
func (s *tokenSource) get(ctx context.Context) (string, error) {
	if t, ok := s.current(); ok {
		return t, nil
	}
	select {
	case s.refreshing <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.refreshing }()
	if t, ok := s.current(); ok { // fetched while this one waited
		return t, nil
	}
	started := time.Now()
	got, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	life := time.Duration(got.ExpiresIn) * time.Second
	margin := refreshMargin
	if life/2 < margin {
		margin = life / 2
	}
	s.mu.Lock()
	s.token, s.refreshAt = got.AccessToken, started.Add(life-margin)
	s.mu.Unlock()
	return got.AccessToken, nil
}

// refused drops token, which a request was answered 401 with, so the next get fetches a new
// one, unless another request has replaced it already.
func (s *tokenSource) refused(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}
