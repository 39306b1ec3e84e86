// Package codec turns typed values into bytes and back.
//
// A table, a stream and a view on the same topic must use the same codec:
// the codec is part of the topic's contract with every client that reads or
// writes it, sluice or not. The codecs here write formats any Kafka client
// can read: raw bytes, UTF-8 text, decimal text and JSON.
//
//	type Order struct{ ID int }
//
//	c := codec.JSON[Order]()
//	b, err := c.Encode(Order{ID: 7}) // {"ID":7}
//	o, err := c.Decode(b)            // Order{ID: 7}
//
//	sluice.Input(g, "orders", codec.JSON[Order](), handleOrder)
//
// Any type with the two methods of Codec is a codec, for Protocol Buffers,
// Avro or a format of one's own; a decoding error fails the record, under
// the group's error policy.
package codec
