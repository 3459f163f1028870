"""The sender process (``hookstream sender``): delivery jobs in, HTTP attempts and status out.

``service`` (every lifetime, the entry point), ``loop`` (the consumer loop: schedule, lanes,
commits), ``attempts`` (one attempt and its records), ``parking`` (jobs due later), ``urls`` (URL
verdicts), ``writes`` (producing what attempts cause).
"""
