"""resnet_book: the library behind the ResNet book.

Floors (dependencies point down only):

* ``models``, ``data``, ``results`` -- the networks, CIFAR-10 on the device, runs with provenance;
* ``train``, ``analysis``, ``plots`` -- the paper's recipe, measurements, figures;
* ``experiments`` -- the book's named experiments;
* ``cli`` -- ``python -m resnet_book train | reproduce | bench``.
"""
__version__ = "0.1.0"
