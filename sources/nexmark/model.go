package nexmark

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Kind says which of the three event types an Event holds; the values are
// the reference's event_type column.
type Kind uint8

// Event types, numbered as the reference's event_type.
const (
	KindPerson  Kind = 0
	KindAuction Kind = 1
	KindBid     Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one generated event: Kind says which of Person, Auction and Bid
// it holds. Bids, 46 of every 50 events, are held by value so that a batch
// of them allocates nothing; the rarer people and auctions by pointer, so
// that an Event stays small. In JSON it is the reference's row:
// {"event_type":2,"bid":{...}}, with the one object it holds.
type Event struct {
	Kind    Kind
	Person  *Person  // KindPerson
	Auction *Auction // KindAuction
	Bid     Bid      // KindBid
}

// Time returns the event's event time.
func (e *Event) Time() Time {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	}
	return e.Bid.DateTime
}

type eventJSON struct {
	Kind    Kind     `json:"event_type"`
	Person  *Person  `json:"person,omitempty"`
	Auction *Auction `json:"auction,omitempty"`
	Bid     *Bid     `json:"bid,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (e Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{Kind: e.Kind}
	switch e.Kind {
	case KindPerson:
		j.Person = e.Person
	case KindAuction:
		j.Auction = e.Auction
	case KindBid:
		j.Bid = &e.Bid
	default:
		return nil, fmt.Errorf("nexmark: event of %v", e.Kind)
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{Kind: j.Kind, Person: j.Person, Auction: j.Auction}
	ok := false
	switch j.Kind {
	case KindPerson:
		ok = j.Person != nil
	case KindAuction:
		ok = j.Auction != nil
	case KindBid:
		if ok = j.Bid != nil; ok {
			e.Bid = *j.Bid
		}
	}
	if !ok {
		return fmt.Errorf("nexmark: event_type %d without its %v object", j.Kind, j.Kind)
	}
	return nil
}

// Person is a new person registering, with the reference's field names.
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     Time   `json:"dateTime"`
	Extra        string `json:"extra"`
}

// Auction is a new auction, with the reference's field names.
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    Time   `json:"dateTime"`
	Expires     Time   `json:"expires"`
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid on an auction, with the reference's field names.
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime Time   `json:"dateTime"`
	Extra    string `json:"extra"`
}

// Time is an event time in milliseconds since the Unix epoch (the
// reference's TIMESTAMP(3)). In JSON it is an RFC 3339 string in UTC with
// milliseconds, such as "2015-07-15T00:00:00.001Z".
type Time int64

// TimeLayout is how Time is written in JSON.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Std returns t as a time.Time in UTC.
func (t Time) Std() time.Time { return time.UnixMilli(int64(t)).UTC() }

func (t Time) String() string { return t.Std().Format(TimeLayout) }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return t.AppendJSON(make([]byte, 0, len(TimeLayout)+2)), nil
}

// AppendJSON appends t as a JSON string.
func (t Time) AppendJSON(b []byte) []byte {
	b = append(b, '"')
	b = t.Std().AppendFormat(b, TimeLayout)
	return append(b, '"')
}

// UnmarshalJSON implements json.Unmarshaler; it accepts any RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("nexmark: time %s: not a JSON string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("nexmark: time %q: %w", s, err)
	}
	*t = Time(v.UnixMilli())
	return nil
}
