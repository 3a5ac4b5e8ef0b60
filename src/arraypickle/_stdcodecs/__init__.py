"""The codecs of the standard library, each a plugin module registered like any other."""
