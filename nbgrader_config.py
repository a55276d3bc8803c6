# nbgrader settings for the book's course (`make student`, `make autograde`; see book/for-instructors.md).
# tools/make_student.py copies this file into the course folder _build/nbgrader, where nbgrader reads it.
import os

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

# Grading runs each chapter top to bottom at the `smoke` budget: its live cells then take one to two
# minutes per chapter on a CPU (the chapter's figures come from stored runs).
os.environ["RESNET_BOOK_BUDGET"] = "smoke"

# nbgrader's default of 30 s per cell killed setup cells on a busy 2-core machine (chapter 2's and
# chapter 5's longest cells), turning right answers into zeros. One cell may take up to 10 minutes.
c.Execute.timeout = 600
c.Execute.startup_timeout = 180

# One assignment per chapter (02-residual-reformulation, ...): a submission of one chapter is graded
# alone. Students are added to the gradebook when their first submission is graded.
c.Autograde.create_student = True
