package rota

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrBadSignature is returned when no v2 signature of a delivery matches a secret.
var ErrBadSignature = errors.New("rota: the delivery's signature does not match")

// DeliveryVerifier checks the signature of a webhook or callback delivery as its receiver gets
// it (docs/webhooks.md): an HMAC-SHA256 ("v2") over the timestamp, delivery id, webhook id, the
// URL and the body, with a secret, and a timestamp within MaxAge of now.
type DeliveryVerifier struct {
	// Secrets are the signing secrets accepted (during a rotation, the new and the old).
	Secrets []string
	// URL is the endpoint exactly as registered (the webhook's url, or the task's callback_url).
	URL string
	// MaxAge is the largest difference between Rota-Timestamp and now (default 5 minutes).
	MaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// VerifyDelivery checks one delivery's signature with one secret; see DeliveryVerifier.
func VerifyDelivery(secret, url string, header http.Header, body []byte) error {
	return DeliveryVerifier{Secrets: []string{secret}, URL: url}.Verify(header, body)
}

// Verify returns nil when some v2 signature in header matches one of the secrets and the
// timestamp is fresh. Deduplicate by the Rota-Delivery-Id header afterwards.
func (v DeliveryVerifier) Verify(header http.Header, body []byte) error {
	ts := header.Get("Rota-Timestamp")
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("rota: the delivery's Rota-Timestamp %q is not a number", ts)
	}
	now, maxAge := time.Now, v.MaxAge
	if v.Now != nil {
		now = v.Now
	}
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	if age := now().Sub(time.Unix(seconds, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("rota: the delivery's timestamp is %s away from now", age.Round(time.Second))
	}
	signed := strings.Join([]string{ts, header.Get("Rota-Delivery-Id"), header.Get("Rota-Webhook-Id"), v.URL, string(body)}, "\n")
	for _, entry := range strings.Split(header.Get("Rota-Signature"), ",") {
		scheme, sig, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || scheme != "v2" {
			continue
		}
		got, err := hex.DecodeString(sig)
		if err != nil {
			continue
		}
		for _, secret := range v.Secrets {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(signed))
			if hmac.Equal(got, mac.Sum(nil)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
