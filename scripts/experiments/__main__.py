"""`python -m scripts.experiments compare|grid`, from the checkout's root."""

from scripts.experiments.cli import main

if __name__ == "__main__":
    main()
