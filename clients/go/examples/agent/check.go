package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

type checkRequest struct {
	Org     string `json:"org"`
	Package string `json:"package"`
	Current string `json:"current,omitempty"`
}

type checkResult struct {
	Package  string `json:"package"`
	Current  string `json:"current,omitempty"`
	Latest   string `json:"latest"`
	Outdated bool   `json:"outdated"`
}

type checker struct {
	org      string
	registry string
	http     http.Client
}

// check asks the registry for a package's latest version. A task of another organisation
// cannot reach this agent (its key is limited to the org's queue); it is refused anyway.
func (c *checker) check(ctx context.Context, task *rota.Task) (any, error) {
	var req checkRequest
	if err := json.Unmarshal(task.Payload, &req); err != nil || req.Package == "" {
		return nil, rota.Dead(fmt.Errorf("not a version check: %s", task.Payload))
	}
	if task.Group == nil || *task.Group != c.org || req.Org != c.org {
		return nil, rota.Dead(fmt.Errorf("task of another organisation (group %v) reached the agent of %s", task.Group, c.org))
	}
	latest, err := c.latest(ctx, req.Package)
	if err != nil {
		return nil, err
	}
	return checkResult{Package: req.Package, Current: req.Current, Latest: latest, Outdated: req.Current != "" && req.Current != latest}, nil
}

var errNoSuchPackage = errors.New("no such package")

func (c *checker) latest(ctx context.Context, pkg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.registry+"/"+url.PathEscape(pkg)+"/latest", nil)
	if err != nil {
		return "", rota.Dead(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", rota.Temporary(fmt.Errorf("registry unreachable: %w", err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", rota.Dead(fmt.Errorf("%s: %w", pkg, errNoSuchPackage))
	case resp.StatusCode == http.StatusTooManyRequests:
		return "", rota.RetryIn(errors.New("the registry is rate limiting us"), time.Minute)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("registry answered %s", resp.Status)
	}
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Version == "" {
		return "", fmt.Errorf("registry answer without a version: %v", err)
	}
	return body.Version, nil
}
