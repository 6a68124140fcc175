"""The webhook sender: status events POSTed, signed, to the URLs users subscribed."""
