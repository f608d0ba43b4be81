"""The photo side of Toonify, one step a module: decode an upload safely (decode), find faces and their
landmarks with dlib (detect), warp each to the FFHQ crop (align), and put results back (paste). Arrays in,
arrays out: no models, no HTTP, no jobs."""
