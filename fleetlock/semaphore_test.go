package fleetlock

import "testing"

func TestSemaphoreJSONIsAirlocks(t *testing.T) {
	s := NewSemaphore(2)
	if got := string(s.Marshal()); got != `{"total_slots":2,"holders":[]}` {
		t.Fatal(got)
	}
	for _, id := range []string{"b", "a"} {
		if ch, err := s.Lock(id); err != nil || !ch {
			t.Fatal(id, ch, err)
		}
	}
	if ch, err := s.Lock("a"); err != nil || ch {
		t.Fatal("recursive lock", ch, err)
	}
	if _, err := s.Lock("c"); err == nil {
		t.Fatal("third holder in two slots")
	}
	if got := string(s.Marshal()); got != `{"total_slots":2,"holders":["a","b"]}` {
		t.Fatal(got)
	}
	if !s.Unlock("a") || s.Unlock("a") {
		t.Fatal("unlock")
	}
	if Key("default") != "com.coreos.airlock/groups/default/v1/semaphore" {
		t.Fatal(Key("default"))
	}
}
