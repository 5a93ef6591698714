"""The Textual TUI (`softphone` with no subcommand). The only package that imports textual;
it talks to the engine through `EngineThread` and its events only."""
