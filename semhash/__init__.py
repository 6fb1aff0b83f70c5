"""semhash: semantic hashing search for document collections."""
