from .utils.allocator import configure_allocator

configure_allocator()  # before torch allocates anything (see ser_fcn/utils/allocator.py)

from .cli import main  # noqa: E402

if __name__ == "__main__":
    main()
