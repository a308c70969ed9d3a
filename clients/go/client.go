package rota

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultURL is the server a client talks to when neither WithURL nor ROTA_URL names one.
const DefaultURL = "http://127.0.0.1:7070"

// Client talks to one Rota server. It is safe for concurrent use; connections are pooled.
type Client struct {
	base         string
	token        string
	tokenGiven   bool
	tokens       *tokenSource // WithClientCredentials
	tenant       string
	http         *http.Client
	timeout      time.Duration
	readAttempts int
}

// Option configures a Client.
type Option func(*Client)

// WithURL sets the server's base URL (default ROTA_URL, else DefaultURL).
func WithURL(u string) Option { return func(c *Client) { c.base = strings.TrimRight(u, "/") } }

// WithToken sets the bearer token: an API key or a JWT (default ROTA_TOKEN).
func WithToken(token string) Option {
	return func(c *Client) { c.token, c.tokenGiven = token, true }
}

// WithTenant makes an admin credential act in another tenant (default ROTA_TENANT).
func WithTenant(tenant string) Option { return func(c *Client) { c.tenant = tenant } }

// WithTimeout bounds each request (default 30 s). Long polls add their wait to it.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithReadAttempts sets how many times a read (GET) is tried when the server cannot be
// reached (default 3). Writes are sent once: one whose answer was lost may have happened.
func WithReadAttempts(n int) Option {
	return func(c *Client) {
		if n < 1 {
			n = 1
		}
		c.readAttempts = n
	}
}

// WithHTTPClient replaces the HTTP client (its Timeout should be zero: the client sets a
// deadline on each request itself).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New makes a client; ROTA_URL, ROTA_TOKEN and ROTA_TENANT are the defaults the options
// override.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		base:         strings.TrimRight(os.Getenv("ROTA_URL"), "/"),
		token:        os.Getenv("ROTA_TOKEN"),
		tenant:       os.Getenv("ROTA_TENANT"),
		timeout:      30 * time.Second,
		readAttempts: 3,
	}
	if c.base == "" {
		c.base = DefaultURL
	}
	for _, o := range opts {
		o(c)
	}
	if c.tokens != nil {
		if c.tokenGiven {
			return nil, errors.New("rota: give WithToken or WithClientCredentials, not both")
		}
		c.token = "" // not ROTA_TOKEN: the access tokens are the credential
	}
	if _, err := url.Parse(c.base); err != nil {
		return nil, fmt.Errorf("rota: bad server URL %q: %w", c.base, err)
	}
	if strings.ContainsAny(c.token, "\r\n") {
		return nil, errors.New("rota: the token contains a line break")
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 1024
		c.http = &http.Client{Transport: t}
	}
	return c, nil
}

// BaseURL is the server's base URL.
func (c *Client) BaseURL() string { return c.base }

type requestIDKey struct{}

// WithRequestID makes the requests made with ctx carry this X-Request-Id instead of a fresh one.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// call sends one request and decodes a 2xx answer's JSON into out (when out is not nil).
// wait is added to the client's timeout, for long polls.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any, wait time.Duration) error {
	raw, err := c.callRaw(ctx, method, path, query, body, wait)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("rota: unexpected answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) callRaw(ctx context.Context, method, path string, query url.Values, body any, wait time.Duration) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("rota: encoding the request: %w", err)
		}
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	id := requestID(ctx)
	attempts := 1
	if method == http.MethodGet {
		attempts = c.readAttempts
	}
	for attempt := 1; ; attempt++ {
		raw, err := c.once(ctx, method, u, id, payload, wait)
		var apiErr *Error
		if err == nil || errors.As(err, &apiErr) || ctx.Err() != nil || attempt >= attempts {
			return raw, err
		}
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (c *Client) once(ctx context.Context, method, u, id string, payload []byte, wait time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+wait)
	defer cancel()
	resp, err := c.do(ctx, func() (*http.Request, error) { return c.newRequest(ctx, method, u, id, payload) })
	if err != nil {
		return nil, fmt.Errorf("rota: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("rota: reading the answer to %s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		return nil, answerError(resp.StatusCode, raw, id)
	}
	return raw, nil
}

// do sends the request build makes. With client credentials it carries the access token, and a
// 401 drops that token and the request is made and sent once more with a new one (it was
// refused, so nothing happened).
func (c *Client) do(ctx context.Context, build func() (*http.Request, error)) (*http.Response, error) {
	for retried := false; ; retried = true {
		req, err := build()
		if err != nil {
			return nil, err
		}
		var bearer string
		if c.tokens != nil {
			if bearer, err = c.tokens.get(ctx); err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.http.Do(req)
		if err != nil || c.tokens == nil || resp.StatusCode != http.StatusUnauthorized || retried {
			return resp, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
		resp.Body.Close()
		c.tokens.refused(bearer)
	}
}

func (c *Client) newRequest(ctx context.Context, method, u, id string, payload []byte) (*http.Request, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("rota: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rota-go/"+Version)
	req.Header.Set("X-Request-Id", id)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.tenant != "" {
		req.Header.Set("Rota-Tenant", c.tenant)
	}
	return req, nil
}

// answerError reads Rota's {"error": {"code", "message"}}, or OAuth's {"error",
// "error_description"} (the token endpoint's, RFC 6749), whose error becomes the Code.
func answerError(status int, raw []byte, id string) error {
	var body struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	if json.Unmarshal(raw, &body) == nil && len(body.Error) > 0 {
		var detail ErrorDetail
		var oauth string
		switch {
		case json.Unmarshal(body.Error, &oauth) == nil && oauth != "":
			message := body.Description
			if message == "" {
				message = oauth
			}
			return &Error{Status: status, Code: oauth, Message: message, RequestID: id}
		case json.Unmarshal(body.Error, &detail) == nil && detail.Code != "":
			return &Error{Status: status, Code: detail.Code, Message: detail.Message, RequestID: id}
		}
	}
	text := strings.TrimSpace(string(raw))
	if len(text) > 500 {
		text = text[:500]
	}
	return &Error{Status: status, Code: "unknown", Message: text, RequestID: id}
}

// ErrorDetail is the server's error body: a snake_case code and a message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }
