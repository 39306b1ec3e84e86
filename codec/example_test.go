package codec_test

import (
	"fmt"
	"strings"

	"github.com/sluice-io/sluice/codec"
)

type order struct {
	ID   int
	Item string
}

func ExampleJSON() {
	c := codec.JSON[order]()
	b, _ := c.Encode(order{ID: 7, Item: "tea"})
	fmt.Println(string(b))
	o, _ := c.Decode([]byte(`{"ID":8,"Item":"cake"}`))
	fmt.Printf("%+v\n", o)
	_, err := c.Decode([]byte("not json"))
	fmt.Println(err != nil)
	// Output:
	// {"ID":7,"Item":"tea"}
	// {ID:8 Item:cake}
	// true
}

// upper is a codec of one's own: any type with Encode and Decode is one.
type upper struct{}

func (upper) Encode(s string) ([]byte, error) { return []byte(strings.ToUpper(s)), nil }
func (upper) Decode(b []byte) (string, error) { return strings.ToLower(string(b)), nil }

func ExampleCodec() {
	var c codec.Codec[string] = upper{}
	b, _ := c.Encode("hello")
	s, _ := c.Decode(b)
	fmt.Println(string(b), s)
	// Output:
	// HELLO hello
}
