package authd_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/concord-kv/concord/services/authd"
)

func TestTokenRoundTrip(t *testing.T) {
	tok := authd.NewToken()
	if !strings.HasPrefix(tok, authd.TokenPrefix) {
		t.Fatalf("token %q lacks prefix", tok)
	}
	h, err := authd.Hash(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !authd.Matches(tok, h) {
		t.Fatal("token does not match its own hash")
	}
	if authd.Matches(authd.NewToken(), h) {
		t.Fatal("another token matches")
	}
}

func TestHashRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "sk_concord_", "Bearer x", "sk_concord_" + strings.Repeat("!", 43), strings.Repeat("a", 54)} {
		if _, err := authd.Hash(s); !errors.Is(err, authd.ErrMalformedToken) {
			t.Errorf("Hash(%q) = %v, want ErrMalformedToken", s, err)
		}
	}
}

func ExampleNewToken() {
	tok := authd.NewToken()
	fmt.Println(strings.HasPrefix(tok, "sk_concord_"), len(tok))
	// Output: true 54
}
