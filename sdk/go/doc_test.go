package concord_test

import (
	"fmt"
	"testing"

	concord "github.com/concord-kv/concord/sdk/go"
)

func TestConsistencyValid(t *testing.T) {
	for _, c := range []concord.Consistency{concord.Eventual, concord.Leader, concord.Strong} {
		if !c.Valid() {
			t.Errorf("%q not valid", c)
		}
	}
	if concord.Consistency("linearizable").Valid() {
		t.Error(`"linearizable" accepted`)
	}
}

func ExampleConsistency_Valid() {
	fmt.Println(concord.Strong.Valid(), concord.Consistency("bogus").Valid())
	// Output: true false
}
