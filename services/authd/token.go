// Package authd will manage Concord's tokens and API keys (see the authd
// issue). Today it holds the token format every later piece relies on.
package authd

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// TokenPrefix starts every Concord bearer token.
const TokenPrefix = "sk_concord_"

// ErrMalformedToken is returned for a string that is not a Concord token.
var ErrMalformedToken = errors.New("malformed token")

// NewToken returns a fresh token with 256 bits of randomness.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is what is stored for a token: the secret itself never is.
func Hash(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok || len(rest) != 43 {
		return "", ErrMalformedToken
	}
	if _, err := base64.RawURLEncoding.DecodeString(rest); err != nil {
		return "", ErrMalformedToken
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]), nil
}

// Matches compares a presented token with a stored hash in constant time.
func Matches(token, storedHash string) bool {
	h, err := Hash(token)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h), []byte(storedHash)) == 1
}
