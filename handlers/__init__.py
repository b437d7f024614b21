"""The conversation core: what the assistant says, independent of any channel."""
