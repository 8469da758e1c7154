"""Training data: windows cut from records, labelled from the sources' own files, rendered once and cached."""
